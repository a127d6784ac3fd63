#if canImport(Glibc)
import Glibc
#endif
import EventLoops
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
        "request_id", "method", "path", "status", "upstream_status", "bytes", "duration_ms", "client", "renewed",
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

/// `2026-11-25T03:00:00.123Z`, the time now.
func appendTimestamp(to out: inout [UInt8]) {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    var t = ts.tv_sec
    var parts = tm()
    gmtime_r(&t, &parts)
    func two(_ v: Int32) {
        out.append(UInt8(ascii: "0") + UInt8(v / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(v % 10))
    }
    let year = Int(parts.tm_year) + 1900
    out.append(contentsOf: String(year).utf8)
    out.append(UInt8(ascii: "-")); two(parts.tm_mon + 1)
    out.append(UInt8(ascii: "-")); two(parts.tm_mday)
    out.append(UInt8(ascii: "T")); two(parts.tm_hour)
    out.append(UInt8(ascii: ":")); two(parts.tm_min)
    out.append(UInt8(ascii: ":")); two(parts.tm_sec)
    out.append(UInt8(ascii: "."))
    let ms = Int32(ts.tv_nsec / 1_000_000)
    out.append(UInt8(ascii: "0") + UInt8(ms / 100)); two(ms % 100)
    out.append(UInt8(ascii: "Z"))
}

/// Where log lines go: standard error, or a buffer kept for tests.
///
/// On an event-loop thread that called `startBatching`, lines collect in a
/// per-thread batch of up to 64 KiB that is written out when full, when its
/// oldest line is `flushMilliseconds` old (the loop wakes for that even when
/// idle), and when the thread ends: a busy loop makes one write(2) for
/// hundreds of lines, and a reader of standard error is woken a few times a
/// second rather than once per request. Lines from other threads are written
/// at once.
public final class LogSink: Sendable {
    private let fd: Int32
    private let capturing: Bool
    private let captured = Mutex<[UInt8]>([])
    let flushNanoseconds: UInt64

    public static let standardError = LogSink(fd: 2)

    public init(fd: Int32, flushMilliseconds: Int = 500) {
        self.fd = fd
        self.capturing = false
        self.flushNanoseconds = UInt64(max(1, flushMilliseconds)) * 1_000_000
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

    /// Writes what the calling thread has batched.
    public func flushBatch() {
        Self.currentBatch?.flush()
    }

    func write(_ line: [UInt8]) {
        if !capturing, let batch = Self.currentBatch {
            batch.append { $0.append(contentsOf: line) }
            return
        }
        emit(line)
    }

    /// Builds a line in place: in the calling thread's batch when it
    /// batches, otherwise in a buffer written at once.
    func writeLine(_ build: (inout [UInt8]) -> Void) {
        if !capturing, let batch = Self.currentBatch {
            batch.append(build)
            return
        }
        var line: [UInt8] = []
        line.reserveCapacity(256)
        build(&line)
        emit(line)
    }

    fileprivate func emit(_ bytes: [UInt8]) {
        if capturing {
            captured.withLock { $0.append(contentsOf: bytes) }
            return
        }
        bytes.withUnsafeBytes { raw in
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
    private var bytes: [UInt8] = []
    private var oldestAt: UInt64 = 0

    fileprivate init(sink: LogSink) {
        self.sink = sink
        bytes.reserveCapacity(Self.capacity)
    }

    fileprivate func append(_ build: (inout [UInt8]) -> Void) {
        if bytes.isEmpty { oldestAt = MonotonicClock.now() }
        build(&bytes)
        // Written before the buffer would have to grow.
        if bytes.count > Self.capacity - 1024 { flush() }
    }

    public var nextDeadline: UInt64? {
        bytes.isEmpty ? nil : oldestAt &+ sink.flushNanoseconds
    }

    public func deadlineReached() {
        flush()
    }

    func flush() {
        if bytes.isEmpty { return }
        sink.emit(bytes)
        bytes.removeAll(keepingCapacity: true)
    }
}
