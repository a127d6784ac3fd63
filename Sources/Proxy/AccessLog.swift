import Logging

/// One answered request, as the access log tells it. Byte fields are the
/// request's own bytes, not copies.
struct AccessEntry {
    var requestID: [UInt8]
    var method: ArraySlice<UInt8>
    /// The target without its query.
    var path: ArraySlice<UInt8>
    var status: Int
    var upstreamStatus: Int?
    var bytes: Int
    var durationMicros: UInt64?
    var client: String
    var renewed: Bool
    var replayed: Bool
    var error: ProxyError?
    var reason: String?
}

/// The access log: one line per answered request, in `LineLogHandler`'s
/// text and JSON formats, written byte by byte into the loop's log batch:
/// no `Logger.Metadata`, no `String` per field. A logger whose handler is
/// not a `LineLogHandler` gets the line through swift-log as before.
struct AccessLog: Sendable {
    private enum Output: Sendable {
        case off
        case lines(LineLogHandler.Format, LogSink)
        case logger(Logger)
    }

    private let output: Output

    init(logger: Logger) {
        if logger.logLevel > .info {
            output = .off
        } else if let handler = logger.handler as? LineLogHandler, handler.metadata.isEmpty {
            output = .lines(handler.format, handler.sink)
        } else {
            output = .logger(logger)
        }
    }

    var isOn: Bool {
        if case .off = output { return false }
        return true
    }

    func record(_ entry: AccessEntry) {
        switch output {
        case .off:
            return
        case .lines(let format, let sink):
            sink.writeLine { Self.appendLine(entry, format: format, to: &$0) }
        case .logger(let logger):
            logger.info("request", metadata: Self.metadata(entry))
        }
    }

    /// The whole line, newline included; the field order is
    /// `LineLogHandler.fieldOrder`.
    static func appendLine(_ entry: AccessEntry, format: LineLogHandler.Format, to out: inout [UInt8]) {
        let line = LineWriter(format: format)
        line.begin(&out)
        line.field("request_id", bytes: entry.requestID, &out)
        line.field("method", bytes: entry.method, &out)
        line.field("path", bytes: entry.path, &out)
        line.field("status", number: entry.status, &out)
        if let upstream = entry.upstreamStatus {
            line.field("upstream_status", number: upstream, &out)
        } else {
            line.field("upstream_status", bytes: "-".utf8, &out)
        }
        line.field("bytes", number: entry.bytes, &out)
        if let micros = entry.durationMicros { line.field("duration_ms", millisecondsFromMicros: micros, &out) }
        line.field("client", bytes: entry.client.utf8, &out)
        line.field("renewed", bytes: entry.renewed ? "true".utf8 : "false".utf8, &out)
        line.field("replayed", bytes: entry.replayed ? "true".utf8 : "false".utf8, &out)
        if let error = entry.error { line.field("error", bytes: error.rawValue.utf8, &out) }
        if let reason = entry.reason { line.field("reason", bytes: reason.utf8, &out) }
        line.end(&out)
    }

    /// The same fields for another handler.
    static func metadata(_ entry: AccessEntry) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "request_id": .string(String(decoding: entry.requestID, as: UTF8.self)),
            "method": .string(String(decoding: entry.method, as: UTF8.self)),
            "path": .string(String(decoding: entry.path, as: UTF8.self)),
            "status": .stringConvertible(entry.status),
            "upstream_status": .string(entry.upstreamStatus.map(String.init) ?? "-"),
            "bytes": .stringConvertible(entry.bytes),
            "client": .string(entry.client),
            "renewed": .stringConvertible(entry.renewed),
            "replayed": .stringConvertible(entry.replayed),
        ]
        if let micros = entry.durationMicros {
            var text: [UInt8] = []
            appendMilliseconds(micros, to: &text)
            metadata["duration_ms"] = .string(String(decoding: text, as: UTF8.self))
        }
        if let error = entry.error { metadata["error"] = .string(error.rawValue) }
        if let reason = entry.reason { metadata["reason"] = .string(reason) }
        return metadata
    }
}

/// Writes the access line's parts exactly as `LineLogHandler` writes a
/// message with metadata: `<ts> info request key=value ...` or
/// `{"ts":...,"level":"info","msg":"request","key":"value",...}`.
private struct LineWriter {
    let format: LineLogHandler.Format

    func begin(_ out: inout [UInt8]) {
        switch format {
        case .text:
            appendTimestamp(to: &out)
            out.append(contentsOf: " info request".utf8)
        case .json:
            out.append(contentsOf: #"{"ts":""#.utf8)
            appendTimestamp(to: &out)
            out.append(contentsOf: #"","level":"info","msg":"request""#.utf8)
        }
    }

    func end(_ out: inout [UInt8]) {
        if format == .json { out.append(UInt8(ascii: "}")) }
        out.append(0x0A)
    }

    private func key(_ name: StaticString, _ out: inout [UInt8]) {
        let bytes = UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        switch format {
        case .text:
            out.append(UInt8(ascii: " "))
            out.append(contentsOf: bytes)
            out.append(UInt8(ascii: "="))
        case .json:
            out.append(contentsOf: #",""#.utf8)
            out.append(contentsOf: bytes)
            out.append(contentsOf: #"":"#.utf8)
        }
    }

    /// A value from the network or from text: escaped in JSON, quoted in
    /// text when it is empty or holds a space, a quote or a control
    /// character; bytes that are not UTF-8 become U+FFFD, as in a `String`.
    func field<Bytes: Collection<UInt8>>(_ name: StaticString, bytes: Bytes, _ out: inout [UInt8]) {
        key(name, &out)
        if bytes.contains(where: { $0 >= 0x80 }) {
            // Rare (a parsed target is ASCII): let String replace what is not UTF-8.
            let text = String(decoding: bytes, as: UTF8.self)
            appendValue(text.utf8, &out)
        } else {
            appendValue(bytes, &out)
        }
    }

    private func appendValue<Bytes: Collection<UInt8>>(_ bytes: Bytes, _ out: inout [UInt8]) {
        if format == .text && !bytes.isEmpty && !bytes.contains(where: { $0 == 0x20 || $0 == 0x22 || $0 < 0x20 }) {
            out.append(contentsOf: bytes)
        } else {
            appendJSONString(utf8: bytes, to: &out)
        }
    }

    func field(_ name: StaticString, number: Int, _ out: inout [UInt8]) {
        key(name, &out)
        quote(&out)
        appendDecimal(number, to: &out)
        quote(&out)
    }

    func field(_ name: StaticString, millisecondsFromMicros micros: UInt64, _ out: inout [UInt8]) {
        key(name, &out)
        quote(&out)
        appendMilliseconds(micros, to: &out)
        quote(&out)
    }

    /// JSON has every value as a string, as `LineLogHandler` writes them.
    private func quote(_ out: inout [UInt8]) {
        if format == .json { out.append(UInt8(ascii: "\"")) }
    }
}

/// `value` in decimal, without making a `String`.
func appendDecimal(_ value: Int, to out: inout [UInt8]) {
    if value < 0 { out.append(UInt8(ascii: "-")) }
    appendDecimal(UInt64(value.magnitude), to: &out)
}

func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
    let start = out.count
    var rest = value
    repeat {
        out.append(UInt8(ascii: "0") + UInt8(rest % 10))
        rest /= 10
    } while rest > 0
    out[start...].reverse()
}

/// Microseconds as milliseconds with three decimals: `12.408`.
func appendMilliseconds(_ micros: UInt64, to out: inout [UInt8]) {
    appendDecimal(micros / 1000, to: &out)
    out.append(UInt8(ascii: "."))
    let fraction = micros % 1000
    out.append(UInt8(ascii: "0") + UInt8(fraction / 100))
    out.append(UInt8(ascii: "0") + UInt8(fraction / 10 % 10))
    out.append(UInt8(ascii: "0") + UInt8(fraction % 10))
}
