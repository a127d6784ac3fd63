#if canImport(Glibc)
import Glibc
#endif
import HTTP1

/// Writes bytes forward into memory whose room was reserved ahead (a log
/// line's worst-case size): no capacity or uniqueness check per byte, only
/// the bounds check, which traps rather than write past the room.
struct ByteCursor {
    private let start: UnsafeMutablePointer<UInt8>
    private var at: UnsafeMutablePointer<UInt8>
    private let end: UnsafeMutablePointer<UInt8>

    init(_ room: UnsafeMutableBufferPointer<UInt8>) {
        start = room.baseAddress!
        at = start
        end = start + room.count
    }

    /// Bytes written so far.
    var count: Int { at - start }

    @inline(__always)
    mutating func put(_ byte: UInt8) {
        precondition(at < end, "log line larger than its reserved room")
        at.pointee = byte
        at += 1
    }

    mutating func put(_ bytes: UnsafeRawBufferPointer) {
        precondition(end - at >= bytes.count, "log line larger than its reserved room")
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        UnsafeMutableRawPointer(at).copyMemory(from: source, byteCount: bytes.count)
        at += bytes.count
    }

    mutating func put(_ text: StaticString) {
        put(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func put<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        let copied: Void? = bytes.withContiguousStorageIfAvailable { put(UnsafeRawBufferPointer($0)) }
        if copied == nil {
            for b in bytes { put(b) }
        }
    }

    /// `value` in decimal.
    mutating func put(decimal value: Int) {
        if value < 0 { put(UInt8(ascii: "-")) }
        put(decimal: UInt64(value.magnitude))
    }

    mutating func put(decimal value: UInt64) {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        precondition(end - at >= digits, "log line larger than its reserved room")
        rest = value
        var i = digits
        repeat {
            i -= 1
            at[i] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
        } while i > 0
        at += digits
    }

    /// `n` (0–99) as two digits.
    mutating func put(twoDigits n: Int) {
        put(UInt8(ascii: "0") + UInt8(n / 10 % 10))
        put(UInt8(ascii: "0") + UInt8(n % 10))
    }

    /// Microseconds as milliseconds with three decimals: `12.408`.
    mutating func put(millisecondsFromMicros micros: UInt64) {
        put(decimal: micros / 1000)
        put(UInt8(ascii: "."))
        let fraction = Int(micros % 1000)
        put(UInt8(ascii: "0") + UInt8(fraction / 100))
        put(twoDigits: fraction % 100)
    }

    /// `2026-11-25T03:00:00.123Z`, the time now (UTC).
    mutating func putTimestamp() {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        putTimestamp(seconds: Int(ts.tv_sec), milliseconds: Int(ts.tv_nsec / 1_000_000))
    }

    /// The civil date from the day count (H. Hinnant's `civil_from_days`):
    /// arithmetic only, where `gmtime_r` cost more than the rest of an
    /// access line.
    mutating func putTimestamp(seconds: Int, milliseconds: Int) {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        put(decimal: year)
        put(UInt8(ascii: "-")); put(twoDigits: month)
        put(UInt8(ascii: "-")); put(twoDigits: day)
        put(UInt8(ascii: "T")); put(twoDigits: secondOfDay / 3600)
        put(UInt8(ascii: ":")); put(twoDigits: secondOfDay / 60 % 60)
        put(UInt8(ascii: ":")); put(twoDigits: secondOfDay % 60)
        put(UInt8(ascii: "."))
        put(UInt8(ascii: "0") + UInt8(milliseconds / 100 % 10)); put(twoDigits: milliseconds % 100)
        put(UInt8(ascii: "Z"))
    }
}

/// HTTP1's JSON string writer straight into the reserved room (the access
/// log): a line's worst case, 6 bytes per byte of text, is the writer's.
extension ByteCursor: JSONOutput {
    @inline(__always)
    mutating func writeByte(_ byte: UInt8) {
        put(byte)
    }

    @inline(__always)
    mutating func writeBytes(_ run: UnsafeBufferPointer<UInt8>) {
        put(UnsafeRawBufferPointer(run))
    }
}

/// A buffer of `capacity` bytes filled by `build`, as an array.
func bytesWritten(capacity: Int, _ build: (inout ByteCursor) -> Void) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: capacity) { room, count in
        var cursor = ByteCursor(room)
        build(&cursor)
        count = cursor.count
    }
}

/// `2026-11-25T03:00:00.123Z`, the time now.
func appendTimestamp(to out: inout [UInt8]) {
    out.append(contentsOf: bytesWritten(capacity: 32) { $0.putTimestamp() })
}
