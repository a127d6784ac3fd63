#if canImport(Glibc)
import Glibc
#endif
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
    private let format: Format
    private let sink: LogSink

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

    private func appendTimestamp(to out: inout [UInt8]) {
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
}

/// Where log lines go: standard error, or a buffer kept for tests.
///
/// On an event-loop thread that called `startBatching`, lines collect in a
/// per-thread buffer that the loop writes out once per iteration, so a busy
/// loop makes one write(2) for many access lines instead of one each. Lines
/// from other threads are written at once.
public final class LogSink: Sendable {
    private let fd: Int32
    private let capturing: Bool
    private let captured = Mutex<[UInt8]>([])

    public static let standardError = LogSink(fd: 2)

    public init(fd: Int32) {
        self.fd = fd
        self.capturing = false
    }

    /// Keeps every line in memory.
    public init() {
        self.fd = -1
        self.capturing = true
    }

    /// The calling thread's batch, if it batches.
    private final class Batch {
        var bytes: [UInt8] = []
    }

    private static let batchKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Makes the calling thread batch its lines until `flushBatch`; call on a
    /// loop thread, and flush at the end of each iteration.
    public func startBatching() {
        let batch = Batch()
        batch.bytes.reserveCapacity(16384)
        pthread_setspecific(Self.batchKey, Unmanaged.passRetained(batch).toOpaque())
    }

    /// Writes what the calling thread has batched.
    public func flushBatch() {
        guard let raw = pthread_getspecific(Self.batchKey) else { return }
        let batch = Unmanaged<Batch>.fromOpaque(raw).takeUnretainedValue()
        if batch.bytes.isEmpty { return }
        emit(batch.bytes)
        batch.bytes.removeAll(keepingCapacity: true)
    }

    func write(_ line: [UInt8]) {
        if !capturing, let raw = pthread_getspecific(Self.batchKey) {
            let batch = Unmanaged<Batch>.fromOpaque(raw).takeUnretainedValue()
            batch.bytes.append(contentsOf: line)
            if batch.bytes.count >= 65536 { flushBatch() }
            return
        }
        emit(line)
    }

    private func emit(_ bytes: [UInt8]) {
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
