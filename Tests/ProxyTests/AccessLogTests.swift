import Foundation
import HTTP1
import Logging
@testable import Proxy
import TestSupport
import Testing

/// The access log's own path: the same lines as swift-log with
/// `LineLogHandler` wrote, hostile paths escaped, batches written when due.
@Suite(.serialized) struct AccessLogTests {
    static func entry(path: [UInt8] = Array("/payments/imp_1".utf8), client: String = "127.0.0.1",
                      error: ProxyError? = nil, reason: String? = nil, upstreamStatus: Int? = 200,
                      durationMicros: UInt64? = 12_408) -> AccessEntry {
        AccessEntry(requestID: Array("3f9c0a1b2c4d-00000102".utf8), method: ArraySlice("GET".utf8),
                    path: ArraySlice(path), status: 200, upstreamStatus: upstreamStatus, bytes: 1330,
                    durationMicros: durationMicros, client: client, renewed: false, replayed: true, error: error,
                    reason: reason)
    }

    /// The line as swift-log and `LineLogHandler` made it before the access
    /// log had its own path: metadata built as `ProxyHandler` built it.
    static func swiftLogLine(_ e: AccessEntry, format: LineLogHandler.Format) -> String {
        let sink = LogSink()
        let logger = Logger(label: "t") { LineLogHandler(label: $0, level: .info, format: format, sink: sink) }
        var metadata: Logger.Metadata = [
            "request_id": .string(String(decoding: e.requestID, as: UTF8.self)),
            "method": .string(String(decoding: e.method, as: UTF8.self)),
            "path": .string(String(decoding: e.path, as: UTF8.self)),
            "status": .stringConvertible(e.status),
            "upstream_status": .string(e.upstreamStatus.map(String.init) ?? "-"),
            "bytes": .stringConvertible(e.bytes),
            "client": .string(e.client),
            "renewed": .stringConvertible(e.renewed),
            "replayed": .stringConvertible(e.replayed),
        ]
        if let micros = e.durationMicros {
            metadata["duration_ms"] = .string("\(micros / 1000).\(String(micros % 1000 + 1000).dropFirst())")
        }
        if let error = e.error { metadata["error"] = .string(error.rawValue) }
        if let reason = e.reason { metadata["reason"] = .string(reason) }
        logger.info("request", metadata: metadata)
        return sink.capturedText
    }

    static func directLine(_ e: AccessEntry, format: LineLogHandler.Format) -> String {
        let out = bytesWritten(capacity: AccessLog.maxBytes(e)) {
            var clock = LogClock()
            AccessLog.putLine(e, format: format, clock: &clock, to: &$0)
        }
        return String(validating: out, as: UTF8.self) ?? "not UTF-8"
    }

    /// The line without its timestamp (24 characters, in both formats).
    static func untimed(_ line: String, format: LineLogHandler.Format) -> String {
        let skip = format == .text ? 0 : #"{"ts":""#.count
        let start = line.index(line.startIndex, offsetBy: skip)
        return String(line[..<start]) + String(line[line.index(start, offsetBy: 24)...])
    }

    static let hostilePaths: [[UInt8]] = [
        Array(#"/a"b\c"#.utf8),
        Array("/x status=999 forged=1".utf8),
        Array("/x\n2026-01-01T00:00:00.000Z info request request_id=forged".utf8),
        Array("/x\r\t\u{0}\u{1b}[31m\u{7f}".utf8),
        Array("/x\",\"status\":\"999".utf8),
        [0x2F, 0xFF, 0xFE, 0xC3, 0x28, 0xE2, 0x82, 0x2F, 0x22, 0x0A],  // not UTF-8, then a quote and a newline
        Array("/결제/é".utf8),
        [],
    ]

    @Test(arguments: LineLogHandler.Format.allCases)
    func linesAreTheSwiftLogLinesByteForByte(format: LineLogHandler.Format) {
        var entries = [
            Self.entry(),
            Self.entry(error: .upstreamUnreachable, reason: #"upstream unreachable: "connect" failed \ refused"#,
                       upstreamStatus: nil),
            Self.entry(client: "", durationMicros: nil),
            Self.entry(durationMicros: 0),
            Self.entry(durationMicros: 123_456_789_012),
        ]
        entries += Self.hostilePaths.map { Self.entry(path: $0) }
        for e in entries {
            let direct = Self.directLine(e, format: format)
            let old = Self.swiftLogLine(e, format: format)
            #expect(Self.untimed(direct, format: format) == Self.untimed(old, format: format))
            #expect(direct.count == old.count)
        }
    }

    @Test(arguments: hostilePaths)
    func aHostilePathStaysInsideItsJSONString(path: [UInt8]) throws {
        let line = Self.directLine(Self.entry(path: path), format: .json)
        #expect(line.firstIndex(of: "\n") == line.index(before: line.endIndex), "one line")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        #expect(object["path"] == String(decoding: path, as: UTF8.self))
        #expect(object["status"] == "200")
        #expect(object["request_id"] == "3f9c0a1b2c4d-00000102")
        #expect(object.count == 13)
    }

    @Test(arguments: hostilePaths)
    func aHostilePathStaysInsideItsTextValue(path: [UInt8]) throws {
        let line = Self.directLine(Self.entry(path: path), format: .text)
        let bytes = Array(line.utf8)
        #expect(bytes.last == 0x0A)
        #expect(!bytes.dropLast().contains { $0 < 0x20 }, "no control character besides the final newline")
        let fields = try #require(Self.parseText(line))
        #expect(fields.map(\.0) == [
            "request_id", "method", "path", "status", "upstream_status", "bytes", "duration_ms", "client", "renewed",
            "replayed",
        ])
        #expect(fields[2].1 == String(decoding: path, as: UTF8.self))
        #expect(fields[3].1 == "200")
    }

    /// `key=value` pairs after `<ts> info request`; a value is bare (up to
    /// the next space) or a JSON string.
    static func parseText(_ line: String) -> [(String, String)]? {
        var rest = Substring(line.dropLast())
        for _ in 0..<3 {
            guard let space = rest.firstIndex(of: " ") else { return nil }
            rest = rest[rest.index(after: space)...]
        }
        var fields: [(String, String)] = []
        while !rest.isEmpty {
            guard let equals = rest.firstIndex(of: "=") else { return nil }
            let key = String(rest[..<equals])
            rest = rest[rest.index(after: equals)...]
            var end = rest.firstIndex(of: " ") ?? rest.endIndex
            var value = String(rest[..<end])
            if rest.first == "\"" {
                // The shortest prefix that is a whole JSON string.
                var i = rest.index(after: rest.startIndex)
                var decoded: String?
                while i < rest.endIndex {
                    if rest[i] == "\"",
                        let s = try? JSONSerialization.jsonObject(
                            with: Data(rest[...i].utf8), options: .fragmentsAllowed) as? String {
                        decoded = s
                        end = rest.index(after: i)
                        break
                    }
                    i = rest.index(after: i)
                }
                guard let decoded else { return nil }
                value = decoded
            }
            fields.append((key, value))
            rest = rest[end...]
            if rest.first == " " { rest = rest.dropFirst() } else if !rest.isEmpty { return nil }
        }
        return fields
    }

    @Test(arguments: LineLogHandler.Format.allCases)
    func aQuoteAndABackslashInARequestPathAreEscapedEndToEnd(format: LineLogHandler.Format) throws {
        let h = try Harness(logFormat: format)
        defer { h.stop() }
        _ = try h.raw("GET /payments/a\"b\\c?q=1 HTTP/1.1\r\nHost: a\r\nX-Request-Id: hostile-1\r\nConnection: close\r\n\r\n")
        let line = try #require(h.logs.capturedText.split(separator: "\n").first { $0.contains("hostile-1") })
        if format == .json {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
            #expect(object["path"] == #"/payments/a"b\c"#)
        } else {
            let fields = try #require(Self.parseText(line + "\n"))
            #expect(fields.first { $0.0 == "path" }?.1 == #"/payments/a"b\c"#)
        }
    }

    @Test func timestampsAreGmtimes() {
        var seconds: [Int] = [0, 86399, 86400, 951_782_400, 951_868_799, 1_709_164_800, 1_764_633_600, 4_107_542_399,
                              253_402_300_799]
        var random = SystemRandomNumberGenerator()
        for _ in 0..<2000 { seconds.append(Int(random.next() % 253_402_300_800)) }
        for s in seconds {
            var t = time_t(s)
            var parts = tm()
            gmtime_r(&t, &parts)
            let expected = String(
                format: "%04d-%02d-%02dT%02d:%02d:%02d.042Z", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                parts.tm_hour, parts.tm_min, parts.tm_sec)
            let written = bytesWritten(capacity: 32) { $0.putTimestamp(seconds: s, milliseconds: 42) }
            #expect(String(decoding: written, as: UTF8.self) == expected, "\(s)")
        }
    }

    /// The clock formats the date and time once a second: what it writes
    /// is the uncached writing's, through repeats of one second, steps back
    /// and forth, and years of more than four digits.
    @Test func theLogClockWritesWhatTheUncachedTimestampWrites() {
        var random = SystemRandomNumberGenerator()
        var clock = LogClock()
        var second = 1_764_633_600
        for step in 0..<5000 {
            switch step % 7 {
            case 0: second = Int(random.next() % 253_402_300_800)
            case 1: second = 253_402_300_800 + Int(random.next() % 1_000_000_000_000)  // years past 9999
            case 2: second += 1
            case 3: second -= 1
            default: break  // the same second again
            }
            let millis = Int(random.next() % 1000)
            let cached = bytesWritten(capacity: 48) { clock.putTimestamp(seconds: second, milliseconds: millis, &$0) }
            let uncached = bytesWritten(capacity: 48) { $0.putTimestamp(seconds: second, milliseconds: millis) }
            #expect(cached == uncached, "\(second).\(millis)")
        }
    }

    @Test func aLineLargerThanABatchIsWrittenWholeAfterTheBatch() throws {
        let pipe = Pipe(flushMilliseconds: 60_000)
        let h = try Harness(batchedLog: pipe.sink)
        defer {
            h.stop()
            pipe.close()
        }
        let sink = pipe.sink
        let log = AccessLog(logger: Logger(label: "t") { LineLogHandler(label: $0, level: .info, format: .text, sink: sink) })
        let small = Self.entry(path: Array("/small-first".utf8))
        let large = Self.entry(path: Array("/large".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 20_000))
        #expect(AccessLog.maxBytes(large) > LogBatch.capacity)
        let done = DispatchSemaphore(value: 0)
        h.proxy.group.loops[0].execute {
            log.record(small)
            log.record(large)
            done.signal()
        }
        done.wait()
        // Written at once, the batch (the small line) first, without waiting for its deadline.
        #expect(pipe.read(until: "xxx status=200", seconds: 5))
        let small1 = try #require(pipe.text.range(of: "path=/small-first "))
        let large1 = try #require(pipe.text.range(of: "path=/largexxx"))
        #expect(small1.lowerBound < large1.lowerBound)
        #expect(pipe.text.contains("path=/large" + String(repeating: "x", count: 20_000) + " status=200"))
    }

    /// A pipe whose read end is polled: what the proxy has written so far.
    /// Closed by `close()` once the proxy writing to it has stopped.
    final class Pipe: @unchecked Sendable {
        let readFD: Int32
        let writeFD: Int32
        let sink: LogSink
        private(set) var text = ""

        init(flushMilliseconds: Int) {
            var fds: [Int32] = [0, 0]
            precondition(pipe(&fds) == 0)
            readFD = fds[0]
            writeFD = fds[1]
            sink = LogSink(fd: fds[1], flushMilliseconds: flushMilliseconds)
            _ = fcntl(readFD, F_SETFL, fcntl(readFD, F_GETFL) | O_NONBLOCK)
        }

        func close() {
            Glibc.close(readFD)
            Glibc.close(writeFD)
        }

        /// Reads until `needle` shows or `seconds` pass.
        @discardableResult
        func read(until needle: String, seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = Glibc.read(readFD, &buffer, buffer.count)
                if n > 0 { text += String(decoding: buffer[..<n], as: UTF8.self) }
                if text.contains(needle) { return true }
                if Date() >= deadline { return false }
                if n <= 0 { usleep(10_000) }
            }
        }
    }

    @Test func anIdleLoopWritesItsBatchWithinTheFlushInterval() throws {
        let pipe = Pipe(flushMilliseconds: 200)
        let h = try Harness(batchedLog: pipe.sink)
        defer {
            h.stop()
            pipe.close()
        }
        #expect(try h.get("/payments/imp_idle").status == 200)
        // Nothing else happens on the loop: only the batch's deadline can write the line.
        #expect(pipe.read(until: "path=/payments/imp_idle ", seconds: 5))
    }

    @Test func linesWaitInTheBatchAndAreWrittenAtShutdown() throws {
        let pipe = Pipe(flushMilliseconds: 60_000)
        let h = try Harness(batchedLog: pipe.sink)
        #expect(try h.get("/payments/imp_batched").status == 200)
        #expect(!pipe.read(until: "path=/payments/imp_batched ", seconds: 0.5), "held in the loop's batch")
        h.stop()
        #expect(pipe.read(until: "path=/payments/imp_batched ", seconds: 5))
        pipe.close()
    }

    @Test func anotherLineOnALoopIsWrittenAtOnceAfterTheBatchedAccessLines() throws {
        let pipe = Pipe(flushMilliseconds: 60_000)
        let h = try Harness(batchedLog: pipe.sink)
        defer {
            h.stop()
            pipe.close()
        }
        let sink = pipe.sink
        let logger = Logger(label: "t") { LineLogHandler(label: $0, level: .info, format: .text, sink: sink) }
        let log = AccessLog(logger: logger)
        let done = DispatchSemaphore(value: 0)
        h.proxy.group.loops[0].execute {
            log.record(Self.entry(path: Array("/batched-first".utf8)))
            logger.error("token fetch failed")
            done.signal()
        }
        done.wait()
        #expect(pipe.read(until: "token fetch failed", seconds: 5), "not held for the batch's deadline")
        let access = try #require(pipe.text.range(of: "path=/batched-first "))
        let other = try #require(pipe.text.range(of: "token fetch failed"))
        #expect(access.lowerBound < other.lowerBound)
    }

    @Test func anotherLogHandlerGetsTheAccessLineThroughSwiftLog() {
        final class Keep: LogHandler, @unchecked Sendable {
            var logLevel: Logger.Level = .info
            var metadata: Logger.Metadata = [:]
            var events: [(String, Logger.Metadata)] = []
            subscript(metadataKey key: String) -> Logger.Metadata.Value? {
                get { metadata[key] }
                set { metadata[key] = newValue }
            }
            func log(event: LogEvent) { events.append((event.message.description, event.metadata ?? [:])) }
        }
        let keep = Keep()
        AccessLog(logger: Logger(label: "t") { _ in keep }).record(Self.entry(error: .forbidden, reason: "no"))
        #expect(keep.events.count == 1)
        #expect(keep.events.first?.0 == "request")
        let metadata = keep.events.first?.1 ?? [:]
        #expect(metadata["path"]?.description == "/payments/imp_1")
        #expect(metadata["duration_ms"]?.description == "12.408")
        #expect(metadata["error"]?.description == "forbidden")
        #expect(metadata["reason"]?.description == "no")
    }
}
