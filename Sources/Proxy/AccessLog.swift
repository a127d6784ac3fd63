import HTTP1
import Logging

/// One answered request, as the access log tells it. Byte fields are the
/// request's own bytes, not copies.
struct AccessEntry {
    /// Of `ProxyHandler.requestID`'s safe set: written without a scan.
    var requestID: [UInt8]
    /// The account's name, with a config file.
    var account: String?
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

    /// `batch`: the calling loop's log batch, when the caller has it.
    func record(_ entry: AccessEntry, batch known: LogBatch? = nil) {
        switch output {
        case .off:
            return
        case .lines(let format, let sink):
            // Straight into the batch, without a closure (capturing the
            // entry copied it, a retain and release per field).
            let maxBytes = Self.maxBytes(entry)
            if let batch = sink.batchRoom(maxBytes: maxBytes, known: known) {
                var cursor = batch.room(maxBytes)
                Self.putLine(entry, format: format, clock: &batch.clock, to: &cursor)
                batch.commit(cursor)
            } else {
                var clock = LogClock()
                sink.writeLine(maxBytes: maxBytes) { Self.putLine(entry, format: format, clock: &clock, to: &$0) }
            }
        case .logger(let logger):
            logger.info("request", metadata: Self.metadata(entry))
        }
    }

    /// The most a line can take: the fixed parts, 20 digits and a sign per
    /// number, and 6 bytes per byte of text (a control character escaped).
    static func maxBytes(_ entry: AccessEntry) -> Int {
        let text = entry.requestID.count + (entry.account?.utf8.count ?? 0) + entry.method.count + entry.path.count + entry.client.utf8.count
            + (entry.error?.rawValue.utf8.count ?? 0) + (entry.reason?.utf8.count ?? 0)
        return 512 + 6 * text
    }

    /// The whole line, newline included; the field order is
    /// `LineLogHandler.fieldOrder`.
    static func putLine(_ entry: AccessEntry, format: LineLogHandler.Format, clock: inout LogClock,
                        to out: inout ByteCursor) {
        let line = LineWriter(format: format)
        line.begin(clock: &clock, &out)
        line.field("request_id", verbatim: entry.requestID, &out)
        if let account = entry.account { line.field("account", string: account, &out) }
        line.field("method", verbatim: entry.method, &out)
        line.field("path", bytes: entry.path, &out)
        line.field("status", number: entry.status, &out)
        if let upstream = entry.upstreamStatus {
            line.field("upstream_status", number: upstream, &out)
        } else {
            line.field("upstream_status", constant: "-", &out)
        }
        line.field("bytes", number: entry.bytes, &out)
        if let micros = entry.durationMicros { line.field("duration_ms", millisecondsFromMicros: micros, &out) }
        var client = entry.client
        client.withUTF8 { line.field("client", verbatim: $0, &out) }
        line.field("renewed", constant: entry.renewed ? "true" : "false", &out)
        line.field("replayed", constant: entry.replayed ? "true" : "false", &out)
        if let error = entry.error { line.field("error", string: error.rawValue, &out) }
        if let reason = entry.reason { line.field("reason", string: reason, &out) }
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
            let text = bytesWritten(capacity: 32) { $0.put(millisecondsFromMicros: micros) }
            metadata["duration_ms"] = .string(String(decoding: text, as: UTF8.self))
        }
        if let account = entry.account { metadata["account"] = .string(account) }
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

    func begin(clock: inout LogClock, _ out: inout ByteCursor) {
        switch format {
        case .text:
            clock.putTimestamp(&out)
            out.put(" info request")
        case .json:
            out.put(#"{"ts":""#)
            clock.putTimestamp(&out)
            out.put(#"","level":"info","msg":"request""#)
        }
    }

    func end(_ out: inout ByteCursor) {
        if format == .json { out.put(UInt8(ascii: "}")) }
        out.put(0x0A)
    }

    private func key(_ name: StaticString, _ out: inout ByteCursor) {
        switch format {
        case .text:
            out.put(UInt8(ascii: " "))
            out.put(name)
            out.put(UInt8(ascii: "="))
        case .json:
            out.put(#",""#)
            out.put(name)
            out.put(#"":"#)
        }
    }

    /// A value from the network or from text: escaped in JSON, quoted in
    /// text when it is empty or holds a space, a quote or a control
    /// character; bytes that are not UTF-8 become U+FFFD, as in a `String`
    /// (HTTP1's writer does both, without making one).
    func field<Bytes: Collection<UInt8>>(_ name: StaticString, bytes: Bytes, _ out: inout ByteCursor) {
        key(name, &out)
        guard format == .text else {
            appendJSONString(utf8: bytes, to: &out)
            return
        }
        // One pass over the value decides (the usual one, plain ASCII, is then a copy).
        var quoted = bytes.isEmpty
        var ascii = true
        for b in bytes {
            if b <= 0x20 || b == 0x22 {
                quoted = true
                break
            }
            if b >= 0x80 { ascii = false }
        }
        if quoted {
            appendJSONString(utf8: bytes, to: &out)
        } else if ascii {
            out.put(bytes)
        } else {
            appendRepairedUTF8(utf8: bytes, to: &out)
        }
    }

    /// A value that needs neither quotes in text nor escapes in JSON: visible
    /// ASCII without `"` or `\` (a method, which is a token; a request ID of
    /// the safe set `ProxyHandler.requestID` keeps; a client address),
    /// copied without the scan. An empty one takes the general way (text
    /// quotes it).
    func field<Bytes: Collection<UInt8>>(_ name: StaticString, verbatim bytes: Bytes, _ out: inout ByteCursor) {
        guard !bytes.isEmpty else { return field(name, bytes: bytes, &out) }
        assert(bytes.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != 0x22 && $0 != 0x5C }, "not a verbatim value")
        key(name, &out)
        quote(&out)
        out.put(bytes)
        quote(&out)
    }

    /// Text through its contiguous UTF-8 (a `String.UTF8View` walked byte by
    /// byte costs several times more).
    func field(_ name: StaticString, string: String, _ out: inout ByteCursor) {
        var text = string
        text.withUTF8 { field(name, bytes: $0, &out) }
    }

    /// A value of ours that needs neither quotes in text nor escapes.
    func field(_ name: StaticString, constant: StaticString, _ out: inout ByteCursor) {
        key(name, &out)
        quote(&out)
        out.put(constant)
        quote(&out)
    }

    func field(_ name: StaticString, number: Int, _ out: inout ByteCursor) {
        key(name, &out)
        quote(&out)
        out.put(decimal: number)
        quote(&out)
    }

    func field(_ name: StaticString, millisecondsFromMicros micros: UInt64, _ out: inout ByteCursor) {
        key(name, &out)
        quote(&out)
        out.put(millisecondsFromMicros: micros)
        quote(&out)
    }

    /// JSON has every value as a string, as `LineLogHandler` writes them.
    private func quote(_ out: inout ByteCursor) {
        if format == .json { out.put(UInt8(ascii: "\"")) }
    }
}
