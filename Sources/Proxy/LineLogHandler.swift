#if canImport(Glibc)
import Glibc
#endif
import EventLoops
import HTTP1
import Logging
import Synchronization

/// A swift-log handler writing one line per event, as text
/// (`2026-11-25T03:00:00.123Z info listening on ... key=value`) or JSON.
/// Each line goes out in a single write(2), so lines from different threads
/// never interleave.
public struct LineLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable {
        case text, json
    }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let format: Format
    let sink: LogSink

    public init(label: String, level: Logger.Level, format: Format, sink: LogSink = .standardError) {
        self.logLevel = level
        self.format = format
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Fields in this order first (the access line reads left to right), the rest sorted.
    static let fieldOrder = [
        "request_id", "account", "method", "path", "status", "upstream_status", "bytes", "duration_ms", "client", "renewed",
        "replayed", "error", "reason",
    ]

    /// The event's fields in a stable order, without copying the dictionary
    /// when the handler has none of its own (the common case).
    private func orderedFields(_ event: LogEvent) -> [(String, Logger.Metadata.Value)] {
        var all: Logger.Metadata
        if metadata.isEmpty {
            all = event.metadata ?? [:]
        } else {
            all = metadata
            if let extra = event.metadata { all.merge(extra) { _, new in new } }
        }
        var fields: [(String, Logger.Metadata.Value)] = []
        fields.reserveCapacity(all.count)
        var known = 0
        for key in Self.fieldOrder {
            if let value = all[key] {
                fields.append((key, value))
                known += 1
            }
        }
        if known < all.count {
            let rest = all.filter { !Self.fieldOrder.contains($0.key) }.sorted { $0.key < $1.key }
            fields.append(contentsOf: rest.map { ($0.key, $0.value) })
        }
        return fields
    }

    public func log(event: LogEvent) {
        let fields = orderedFields(event)
        var line: [UInt8] = []
        line.reserveCapacity(256)
        switch format {
        case .text:
            appendTimestamp(to: &line)
            line.append(UInt8(ascii: " "))
            line.append(contentsOf: event.level.rawValue.utf8)
            line.append(UInt8(ascii: " "))
            line.append(contentsOf: event.message.description.utf8)
            for (key, value) in fields {
                line.append(UInt8(ascii: " "))
                line.append(contentsOf: key.utf8)
                line.append(UInt8(ascii: "="))
                let text = value.description
                if text.isEmpty || text.utf8.contains(where: { $0 == 0x20 || $0 == 0x22 || $0 < 0x20 }) {
                    appendJSONString(text, to: &line)
                } else {
                    line.append(contentsOf: text.utf8)
                }
            }
        case .json:
            line.append(contentsOf: #"{"ts":""#.utf8)
            appendTimestamp(to: &line)
            line.append(contentsOf: #"","level":""#.utf8)
            line.append(contentsOf: event.level.rawValue.utf8)
            line.append(contentsOf: #"","msg":"#.utf8)
            appendJSONString(event.message.description, to: &line)
            for (key, value) in fields {
                line.append(UInt8(ascii: ","))
                appendJSONString(key, to: &line)
                line.append(UInt8(ascii: ":"))
                appendJSONString(value.description, to: &line)
            }
            line.append(UInt8(ascii: "}"))
        }
        line.append(0x0A)
        sink.write(line)
    }
}

/// Where log lines go: standard error, or a buffer kept for tests.
///
/// On an event-loop thread that called `startBatching`, access lines
/// collect in a per-thread batch of up to 64 KiB that is written out when
/// full, when its oldest line is `flushMilliseconds` old (the loop wakes for
/// that even when idle), before any other line of that thread, and when the
/// thread ends: a busy loop makes one write(2) for hundreds of lines, and a
/// reader of standard error is woken a few times a second rather than once
/// per request. Other lines are written at once.
public final class LogSink: Sendable {
    private let fd: Int32
    private let capturing: Bool
    private let captured = Mutex<[UInt8]>([])
    let flushNanoseconds: UInt64

    public static let standardError = LogSink(fd: 2)

    public init(fd: Int32, flushMilliseconds: Int = 500) {
        self.fd = fd
        self.capturing = false
        self.flushNanoseconds = UInt64(min(max(1, flushMilliseconds), 3_600_000)) * 1_000_000
    }

    /// Keeps every line in memory.
    public init() {
        self.fd = -1
        self.capturing = true
        self.flushNanoseconds = 0
    }

    private static let batchKey: pthread_key_t = {
        var key = pthread_key_t()
        // At the thread's end: write what is left, then free the batch.
        pthread_key_create(&key) { raw in
            guard let raw else { return }
            let batch = Unmanaged<LogBatch>.fromOpaque(raw).takeRetainedValue()
            batch.flush()
        }
        return key
    }()

    /// The calling thread's batch, if it batches.
    private static var currentBatch: LogBatch? {
        guard let raw = pthread_getspecific(batchKey) else { return nil }
        return Unmanaged<LogBatch>.fromOpaque(raw).takeUnretainedValue()
    }

    /// Makes the calling thread (a loop's) batch its lines. The loop must
    /// watch the returned batch's deadline (`addDeadlineSource`).
    public func startBatching() -> LogBatch {
        if let batch = Self.currentBatch { return batch }
        let batch = LogBatch(sink: self)
        pthread_setspecific(Self.batchKey, Unmanaged.passRetained(batch).toOpaque())
        return batch
    }

    /// A line other than an access line (token events, lifecycle): rare,
    /// and wanted at once, so written now, after the access lines the
    /// thread has batched.
    func write(_ line: [UInt8]) {
        if !capturing { Self.currentBatch?.flush() }
        line.withUnsafeBytes { emit($0) }
    }

    /// Builds a line of at most `maxBytes` in place: in the calling
    /// thread's batch when it batches, otherwise in a buffer written at once.
    func writeLine(maxBytes: Int, _ build: (inout ByteCursor) -> Void) {
        if let batch = batchRoom(maxBytes: maxBytes) {
            var cursor = batch.room(maxBytes)
            build(&cursor)
            batch.commit(cursor)
            return
        }
        let line = bytesWritten(capacity: maxBytes, build)
        line.withUnsafeBytes { emit($0) }
    }

    /// The calling thread's batch with room for `maxBytes` made, when it
    /// batches and a batch can hold that much (fill `room`, then `commit`).
    /// `known` is the calling thread's batch when the caller holds it (a
    /// loop's context): no thread-local lookup then.
    func batchRoom(maxBytes: Int, known: LogBatch? = nil) -> LogBatch? {
        guard !capturing, let batch = known ?? Self.currentBatch, batch.makeRoom(maxBytes) else { return nil }
        return batch
    }

    fileprivate func emit(_ raw: UnsafeRawBufferPointer) {
        if capturing {
            captured.withLock { $0.append(contentsOf: raw) }
            return
        }
        var offset = 0
        while offset < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
            if n <= 0 {
                if n < 0 && errno == EINTR { continue }
                return
            }
            offset += n
        }
    }

    public var capturedText: String {
        captured.withLock { String(decoding: $0, as: UTF8.self) }
    }
}

/// One loop thread's unwritten log lines. A `DeadlineSource`: the loop
/// wakes to write them once the oldest is `flushNanoseconds` old.
/// Touched only on its thread.
public final class LogBatch: DeadlineSource {
    static let capacity = 65536
    private let sink: LogSink
    private let storage = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: LogBatch.capacity)
    private var count = 0
    private var oldestAt: Nanoseconds = 0
    /// The loop's access lines' timestamps.
    var clock = LogClock()

    fileprivate init(sink: LogSink) {
        self.sink = sink
    }

    deinit {
        storage.deallocate()
    }

    /// Writes the batch first when `maxBytes` may not fit in what is left.
    /// False when a line that large would not fit in an empty batch: the
    /// caller writes it alone (after the batch, which this wrote).
    fileprivate func makeRoom(_ maxBytes: Int) -> Bool {
        if maxBytes > storage.count - count { flush() }
        return maxBytes <= storage.count
    }

    /// The room `makeRoom` made, to write one line into.
    func room(_ maxBytes: Int) -> ByteCursor {
        ByteCursor(UnsafeMutableBufferPointer(rebasing: storage[count..<(count + maxBytes)]))
    }

    /// Keeps what was written into `room`.
    func commit(_ cursor: ByteCursor) {
        if count == 0 { oldestAt = MonotonicClock.now() }
        count += cursor.count
    }

    public var nextDeadline: Nanoseconds? {
        count == 0 ? nil : oldestAt &+ sink.flushNanoseconds
    }

    public func deadlineReached() {
        flush()
    }

    func flush() {
        if count == 0 { return }
        sink.emit(UnsafeRawBufferPointer(start: storage.baseAddress, count: count))
        count = 0
    }
}
