/// The `Idempotency-Key` the proxy gives a V2 payment call that has none:
/// an RFC 8941 string (in double quotes) of 32 hex digits, 128 bits from
/// the system's cryptographic generator (getrandom), so unique across
/// processes and restarts. With it the API answers a repeated request with
/// the first answer, which makes one re-send on a failed connection safe.
enum IdempotencyKey {
    static func appendNewLine(to out: inout [UInt8]) {
        out.append(literal: #"Idempotency-Key: ""#)
        appendValue(to: &out)
        out.append(UInt8(ascii: "\""))
    }

    /// The 32 hex digits alone.
    static func appendValue(to out: inout [UInt8]) {
        var random = SystemRandomNumberGenerator()
        for word in [random.next() as UInt64, random.next() as UInt64] {
            for shift in stride(from: 60, through: 0, by: -4) {
                out.append(hexDigit(word >> UInt64(shift)))
            }
        }
    }
}
