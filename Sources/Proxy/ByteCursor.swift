#if canImport(Glibc)
import Glibc
#endif
import HTTP1

/// The access log's and the line log's pieces: times, timestamps, JSON.
extension ByteCursor {
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
        putDateAndTime(seconds: seconds)
        put(milliseconds: milliseconds)
    }

    /// `.123Z`: the part of a timestamp below the second.
    mutating func put(milliseconds: Int) {
        put(UInt8(ascii: "0") + UInt8(milliseconds / 100 % 10)); put(twoDigits: milliseconds % 100)
        put(UInt8(ascii: "Z"))
    }

    /// `2026-11-25T03:00:00.`: the part of a timestamp down to the second.
    mutating func putDateAndTime(seconds: Int) {
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
    }
}

/// A loop's clock for its access lines: the date and time down to the
/// second are formatted once a second and copied into every line of that
/// second (a busy loop writes thousands); the milliseconds each time.
struct LogClock {
    private var second = Int.min
    /// The formatted `2026-11-25T03:00:00.` of `second`: 20 bytes in the
    /// years 0 to 9999, at most 30 for any `Int` second.
    private var prefix: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var prefixCount = 0

    /// `2026-11-25T03:00:00.123Z`, the time now (UTC).
    mutating func putTimestamp(_ out: inout ByteCursor) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        putTimestamp(seconds: Int(ts.tv_sec), milliseconds: Int(ts.tv_nsec / 1_000_000), &out)
    }

    mutating func putTimestamp(seconds: Int, milliseconds: Int, _ out: inout ByteCursor) {
        if seconds != second {
            prefixCount = withUnsafeMutableBytes(of: &prefix) { raw in
                var cursor = ByteCursor(raw.bindMemory(to: UInt8.self))
                cursor.putDateAndTime(seconds: seconds)
                return cursor.count
            }
            second = seconds
        }
        let count = prefixCount
        withUnsafeBytes(of: &prefix) { out.put(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        out.put(milliseconds: milliseconds)
    }
}

/// `2026-11-25T03:00:00.123Z`, the time now.
func appendTimestamp(to out: inout [UInt8]) {
    out.append(contentsOf: bytesWritten(capacity: 32) { $0.putTimestamp() })
}
