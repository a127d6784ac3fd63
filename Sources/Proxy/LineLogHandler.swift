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

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        var line: [UInt8] = []
        line.reserveCapacity(256)
        switch format {
        case .text:
            appendTimestamp(to: &line)
            line.append(UInt8(ascii: " "))
            line.append(contentsOf: event.level.rawValue.utf8)
            line.append(UInt8(ascii: " "))
            line.append(contentsOf: event.message.description.utf8)
            for (key, value) in all.sorted(by: { $0.key < $1.key }) {
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
            for (key, value) in all.sorted(by: { $0.key < $1.key }) {
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

    func write(_ line: [UInt8]) {
        if capturing {
            captured.withLock { $0.append(contentsOf: line) }
            return
        }
        line.withUnsafeBytes { raw in
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
