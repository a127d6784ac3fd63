import HTTP1

/// The `Idempotency-Key` the proxy gives a V2 payment call that has none:
/// an RFC 8941 string (in double quotes) of 32 hex digits, 128 bits from
/// the system's cryptographic generator (getrandom), so unique across
/// processes and restarts. With it the API answers a repeated request with
/// the first answer, which makes one re-send on a failed connection safe.
enum IdempotencyKey {
    /// Bytes of the line `putNewLine` writes.
    static let lineBytes = 18 + 32 + 1

    /// `Idempotency-Key: "<32 hex digits>"`, without a line end.
    static func putNewLine(into out: inout ByteCursor) {
        out.put(#"Idempotency-Key: ""# as StaticString)
        var random = SystemRandomNumberGenerator()
        for word in [random.next() as UInt64, random.next() as UInt64] {
            for shift in stride(from: 60, through: 0, by: -4) {
                out.put(hexDigit(word >> UInt64(shift)))
            }
        }
        out.put(UInt8(ascii: "\""))
    }
}
