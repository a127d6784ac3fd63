#if canImport(Glibc)
import Glibc
#endif

/// Writes bytes forward into memory whose room was reserved ahead (a log
/// line's or a request head's worst-case size): no capacity or uniqueness
/// check per byte, only the bounds check, which traps rather than write past
/// the room. `Array.append(contentsOf:)` costs about a hundred instructions a
/// call; a head is a dozen pieces.
@frozen
public struct ByteCursor {
    @usableFromInline let start: UnsafeMutablePointer<UInt8>
    @usableFromInline var at: UnsafeMutablePointer<UInt8>
    @usableFromInline let end: UnsafeMutablePointer<UInt8>

    @inlinable
    public init(_ room: UnsafeMutableBufferPointer<UInt8>) {
        start = room.baseAddress!
        at = start
        end = start + room.count
    }

    /// Bytes written so far.
    @inlinable
    public var count: Int { at - start }

    @inlinable @inline(__always)
    public mutating func put(_ byte: UInt8) {
        precondition(at < end, "written past the reserved room")
        at.pointee = byte
        at += 1
    }

    @inlinable
    public mutating func put(_ bytes: UnsafeRawBufferPointer) {
        precondition(end - at >= bytes.count, "written past the reserved room")
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        UnsafeMutableRawPointer(at).copyMemory(from: source, byteCount: bytes.count)
        at += bytes.count
    }

    @inlinable
    public mutating func put(_ text: StaticString) {
        // withUTF8Buffer, not utf8Start: a one-character literal is stored
        // as its scalar, and utf8Start traps on it.
        text.withUTF8Buffer { put(UnsafeRawBufferPointer($0)) }
    }

    @inlinable
    public mutating func put<Bytes: Collection<UInt8>>(_ bytes: Bytes) {
        let copied: Void? = bytes.withContiguousStorageIfAvailable { put(UnsafeRawBufferPointer($0)) }
        if copied == nil {
            for b in bytes { put(b) }
        }
    }

    /// `value` in decimal.
    @inlinable
    public mutating func put(decimal value: Int) {
        if value < 0 { put(UInt8(ascii: "-")) }
        put(decimal: UInt64(value.magnitude))
    }

    /// Two digits at a time from the end, from a table of the hundred pairs
    /// (a literal: no lazy global to check), after counting the digits by
    /// comparison rather than by division.
    @inlinable
    public mutating func put(decimal value: UInt64) {
        var digits = 1
        var rest = value
        while rest >= 10_000 {
            rest /= 10_000
            digits += 4
        }
        digits += rest >= 100 ? (rest >= 1000 ? 3 : 2) : (rest >= 10 ? 1 : 0)
        precondition(end - at >= digits, "written past the reserved room")
        rest = value
        var i = digits
        ByteCursor.digitPairs.withUTF8Buffer { pairs in
            while rest >= 100 {
                let pair = Int(rest % 100) &* 2
                rest /= 100
                i &-= 2
                at[i] = pairs[pair]
                at[i &+ 1] = pairs[pair &+ 1]
            }
            if rest >= 10 {
                let pair = Int(rest) &* 2
                at[0] = pairs[pair]
                at[1] = pairs[pair &+ 1]
            } else {
                at[0] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest)
            }
        }
        at += digits
    }

    /// "00" to "99", each pair at twice its value.
    @inlinable
    static var digitPairs: StaticString {
        """
            00010203040506070809101112131415161718192021222324252627282930313233343536373839\
            40414243444546474849505152535455565758596061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899
            """
    }
}

/// The JSON string writer straight into the reserved room (the access log):
/// a line's worst case, 6 bytes per byte of text, is the writer's.
extension ByteCursor: JSONOutput {
    @inlinable @inline(__always)
    public mutating func writeByte(_ byte: UInt8) {
        put(byte)
    }

    @inlinable @inline(__always)
    public mutating func writeBytes(_ run: UnsafeBufferPointer<UInt8>) {
        put(UnsafeRawBufferPointer(run))
    }
}

/// A buffer of `capacity` bytes filled by `build`, as an array that keeps
/// that capacity, and `reserving` more (for appends after: a body appended
/// there is copied once, not written here and copied again).
///
/// Written on the stack (the heap past the standard library's limit for
/// it), then appended to an array that reserved the capacity: both are
/// specialized where they are used. `Array(unsafeUninitializedCapacity:)`
/// and `Array(repeating:count:)` call a generic function of the standard
/// library that looks the array's storage type up at run time, under a
/// lock: about 400 instructions a call.
@inlinable
public func bytesWritten(capacity: Int, reserving extra: Int = 0, _ build: (inout ByteCursor) -> Void) -> [UInt8] {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(capacity + extra)
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { room in
        var cursor = ByteCursor(room)
        build(&cursor)
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: room[0..<cursor.count]))
    }
    return bytes
}

/// The bytes of `source` as an array of their size, through the standard
/// library's specialized copy of a buffer (see `bytesWritten`).
@inlinable
public func bytesCopied(_ source: UnsafeRawBufferPointer) -> [UInt8] {
    Array(source.assumingMemoryBound(to: UInt8.self))
}
