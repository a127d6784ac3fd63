/// A connection's receive buffer: bytes are read into the free tail and
/// consumed from the head; it compacts instead of reallocating when it can,
/// and grows only as far as a request head needs.
struct InputBuffer {
    private var storage: [UInt8]
    private(set) var readIndex = 0
    private(set) var writeIndex = 0

    init(capacity: Int) {
        storage = [UInt8](repeating: 0, count: capacity)
    }

    var readableCount: Int { writeIndex - readIndex }
    var isEmpty: Bool { readIndex == writeIndex }

    mutating func consume(_ n: Int) {
        readIndex += n
        if readIndex == writeIndex {
            readIndex = 0
            writeIndex = 0
        }
    }

    /// Makes room for at least `minimum` more bytes, up to `limit` in all.
    /// - Returns: whether any room is free.
    mutating func reserveSpace(minimum: Int, limit: Int) -> Bool {
        if storage.count - writeIndex >= minimum { return true }
        if readIndex > 0 {
            let count = readableCount
            storage.withUnsafeMutableBytes { raw in
                raw.baseAddress!.copyMemory(from: raw.baseAddress! + readIndex, byteCount: count)
            }
            readIndex = 0
            writeIndex = count
            if storage.count - writeIndex >= minimum { return true }
        }
        if storage.count < limit {
            let newSize = min(max(storage.count * 2, writeIndex + minimum), limit)
            storage.append(contentsOf: repeatElement(0, count: newSize - storage.count))
        }
        return storage.count > writeIndex
    }

    /// Gives `body` the free tail to read into; it returns the count written.
    mutating func withFreeSpace(_ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        let start = writeIndex
        let n = storage.withUnsafeMutableBytes { raw in
            body(UnsafeMutableRawBufferPointer(rebasing: raw[start...]))
        }
        if n > 0 { writeIndex += n }
        return n
    }

    func withReadable<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        storage.withUnsafeBytes { raw in
            body(UnsafeRawBufferPointer(rebasing: raw[readIndex..<writeIndex]))
        }
    }

    /// Drops a large buffer after a big request so idle connections stay small.
    mutating func shrinkIfIdle(to capacity: Int) {
        if isEmpty && storage.count > capacity {
            storage = [UInt8](repeating: 0, count: capacity)
        }
    }
}
