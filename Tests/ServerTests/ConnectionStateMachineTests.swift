import HTTP1
import Testing

@testable import Server

@Suite struct ConnectionStateMachineTests {
    static let get = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"

    static func post(_ extra: String = "", length: Int) -> String {
        "POST /payments HTTP/1.1\r\nHost: x\r\nContent-Length: \(length)\r\n\(extra)\r\n"
    }

    func isIdle(_ wire: Wire) -> Bool {
        if case .idle = wire.machine.state { return true }
        return false
    }

    func isLingering(_ wire: Wire) -> Bool {
        if case .lingering = wire.machine.state { return true }
        return false
    }

    // MARK: - Requests and answers

    @Test func keepAliveServesOneRequestAfterAnother() {
        let wire = Wire()
        wire.send(Self.get)
        #expect(wire.requests.count == 1)
        #expect(wire.requests.first?.sequence == 1)
        wire.respond(body: "one")
        #expect(wire.statuses == [200])
        #expect(!wire.text.contains("Connection: close"))
        #expect(isIdle(wire))
        #expect(!wire.writeSideShut)

        wire.send(Self.get)
        #expect(wire.requests.count == 2)
        #expect(wire.requests.last?.sequence == 2)
        wire.respond(body: "two")
        #expect(wire.statuses == [200, 200])
        #expect(wire.text.hasSuffix("two"))
        #expect(!wire.closed)
    }

    /// A body that came with its head (the usual case, taken at once), one
    /// that did not (read on), an empty one, and a request pipelined behind a
    /// body: each request gets exactly its own bytes.
    @Test func bodiesAreTakenWholeOrAsTheyArrive() {
        let wire = Wire()
        wire.send(Self.post(length: 5) + "hello" + Self.post(length: 0) + Self.post(length: 3) + "abc")
        #expect(wire.requests.count == 1)
        #expect(wire.requests.last.map { String(decoding: $0.body, as: UTF8.self) } == "hello")
        wire.respond(body: "one")
        #expect(wire.requests.count == 2)
        #expect(wire.requests.last?.body == [])
        wire.respond(body: "two")
        #expect(wire.requests.count == 3)
        #expect(wire.requests.last.map { String(decoding: $0.body, as: UTF8.self) } == "abc")
        wire.respond(body: "three")
        wire.send(Self.post(length: 6) + "par")
        #expect(wire.requests.count == 3, "the body is not all here")
        wire.send("tly")
        #expect(wire.requests.count == 4)
        #expect(wire.requests.last.map { String(decoding: $0.body, as: UTF8.self) } == "partly")
        wire.respond(body: "four")
        #expect(wire.statuses == [200, 200, 200, 200])
        #expect(wire.requests.map { String(decoding: $0.head[$0.head.methodRange], as: UTF8.self) } == Array(repeating: "POST", count: 4))
        #expect(isIdle(wire))
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() {
        let wire = Wire()
        wire.send(Self.get + "GET /second HTTP/1.1\r\nHost: x\r\n\r\n" + Self.get)
        // One at a time: the others wait in the buffer.
        #expect(wire.requests.count == 1)
        wire.respond(body: "first")
        #expect(wire.requests.count == 2)
        let second = wire.requests[1]
        #expect(String(decoding: second.head[second.head.path], as: UTF8.self) == "/second")
        // A stale answer for the first request is ignored.
        wire.respond(body: "stale", to: 1)
        #expect(wire.statuses == [200])
        wire.respond(body: "second")
        wire.respond(body: "third")
        #expect(wire.requests.map(\.sequence) == [1, 2, 3])
        let text = wire.text
        let positions = ["first", "second", "third"].map { text.firstRange(of: $0)!.lowerBound }
        #expect(positions == positions.sorted())
        #expect(!text.contains("stale"))
    }

    @Test func anHTTP10ClientGetsItsAnswerAndTheConnectionCloses() {
        let wire = Wire()
        wire.send("GET / HTTP/1.0\r\n\r\n")
        wire.respond(body: "old")
        #expect(wire.text.contains("Connection: close\r\n"))
        #expect(wire.writeSideShut)
        #expect(isLingering(wire))
        wire.send("ignored bytes")
        #expect(wire.requests.count == 1)
        wire.peerCloses()
        #expect(wire.closed)
    }

    @Test func expectContinueSendsTheInterimAnswerThenReadsTheBody() {
        let wire = Wire()
        wire.send(Self.post("Expect: 100-continue\r\n", length: 5))
        #expect(wire.text == "HTTP/1.1 100 Continue\r\n\r\n")
        #expect(wire.requests.isEmpty)
        wire.send("hel")
        wire.send("lo")
        #expect(wire.requests.count == 1)
        #expect(wire.requests.first?.body == Array("hello".utf8))
        wire.respond(status: 201, body: "made")
        #expect(wire.statuses == [100, 201])
    }

    @Test func noContinueWhenTheBodyIsAlreadyHere() {
        let wire = Wire()
        wire.send(Self.post("Expect: 100-continue\r\n", length: 5) + "hello")
        #expect(wire.received.isEmpty)
        #expect(wire.requests.first?.body == Array("hello".utf8))
    }

    @Test func aBlockedContinueDoesNotStopTheBody() {
        let wire = Wire()
        wire.room = 0
        wire.send(Self.post("Expect: 100-continue\r\n", length: 5))
        #expect(wire.machine.hasPendingOutput)
        wire.send("hello")
        #expect(wire.requests.first?.body == Array("hello".utf8))
        // The answer goes out after the interim one.
        wire.respond(body: "ok")
        wire.clientReads()
        #expect(wire.statuses == [100, 200])
    }

    @Test func aChunkedBodyArrivesInPieces() {
        let wire = Wire()
        wire.send("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        #expect(wire.requests.isEmpty)
        wire.send("lo\r\n7\r\n, worl")
        wire.send("d\r\n0\r\n\r\n")
        #expect(wire.requests.first?.body == Array("hello, world".utf8))
        wire.respond(body: "ok")
        #expect(isIdle(wire))
    }

    @Test func aBadChunkIsRefusedAndCloses() {
        let wire = Wire()
        wire.send("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        #expect(wire.requests.isEmpty)
        #expect(wire.statuses == [400])
        #expect(wire.writeSideShut)
    }

    @Test func aMalformedHeadIsRefusedWithoutTheHandler() {
        let wire = Wire()
        wire.send("GET / HTTP/1.1\r\nHost : x\r\n\r\n")
        #expect(wire.screened == 0)
        #expect(wire.statuses == [400])
        #expect(wire.text.contains("Connection: close"))
        #expect(wire.writeSideShut)
    }

    @Test func aBodyOverTheLimitIsRefusedBeforeTheScreen() {
        var limits = Limits()
        limits.maxBodyBytes = 10
        let wire = Wire(limits: limits)
        wire.send(Self.post(length: 11))
        #expect(wire.screened == 0)
        #expect(wire.ownAnswers == [.malformed(.bodyTooLarge)])
        #expect(wire.statuses == [413])
    }

    // MARK: - The screen

    @Test func aRefusalBeforeTheBodyClosesWithTheBodyUnread() {
        let wire = Wire()
        wire.refusal = Response(status: 401, body: Array("no".utf8))
        wire.send(Self.post("Expect: 100-continue\r\n", length: 5))
        #expect(wire.statuses == [401])  // and no 100 Continue
        #expect(wire.text.contains("Connection: close"))
        #expect(wire.writeSideShut)
        wire.send("hello")
        #expect(wire.requests.isEmpty)
    }

    @Test func aRefusalWithoutBodyKeepsTheConnection() {
        let wire = Wire()
        wire.refusal = Response(status: 401, body: Array("no".utf8))
        wire.send(Self.get)
        #expect(wire.statuses == [401])
        #expect(!wire.text.contains("Connection: close"))
        #expect(isIdle(wire))
        // 405 closes even so.
        wire.refusal = Response(status: 405)
        wire.send(Self.get)
        #expect(wire.statuses == [401, 405])
        #expect(wire.writeSideShut)
    }

    // MARK: - Deadlines

    @Test func aSilentNewConnectionClosesAfterTheHeadTimeout() {
        let wire = Wire()
        wire.advance(seconds: 9.999)
        wire.tick()
        #expect(!wire.closed)
        wire.advance(seconds: 0.001)
        wire.tick()
        #expect(wire.closed)
        #expect(wire.received.isEmpty)
    }

    @Test func anIncompleteHeadGets408AtTheHeadTimeout() {
        let wire = Wire()
        wire.advance(seconds: 5)
        wire.send("GET / HTTP/1.1\r\nHo")  // the first byte starts the head's 10 s
        wire.advance(seconds: 9.9)
        wire.tick()
        #expect(wire.received.isEmpty)
        wire.send("st: x\r\n")  // progress does not extend a head's time
        wire.advance(seconds: 0.1)
        wire.tick()
        #expect(wire.ownAnswers == [.headerTimeout])
        #expect(wire.statuses == [408])
        #expect(wire.writeSideShut)
        wire.advance(seconds: 1.9)
        wire.tick()
        #expect(!wire.closed)
        wire.advance(seconds: 0.1)
        wire.tick()
        #expect(wire.closed, "the linger ends after 2 s")
    }

    @Test func aStalledBodyGets408AfterTenSecondsWithoutAByte() {
        let wire = Wire()
        wire.send(Self.post(length: 10) + "abc")
        wire.advance(seconds: 9)
        wire.tick()
        wire.send("d")
        wire.advance(seconds: 9.9)
        wire.tick()
        #expect(wire.received.isEmpty)
        wire.advance(seconds: 0.1)
        wire.tick()
        #expect(wire.ownAnswers == [.bodyTimeout])
        #expect(wire.statuses == [408])
        #expect(wire.requests.isEmpty)
    }

    @Test func aTricklingBodyGets408AtThirtySecondsInAll() {
        let wire = Wire()
        wire.send(Self.post(length: 100))
        for _ in 0..<5 {
            wire.advance(seconds: 5)
            wire.send("x")
            wire.tick()
        }
        wire.advance(seconds: 4.9)  // 29.9 s after the head
        wire.send("x")
        wire.tick()
        #expect(wire.received.isEmpty)
        wire.advance(seconds: 0.1)
        wire.tick()
        #expect(wire.statuses == [408])
    }

    @Test func anIdleKeepAliveConnectionClosesAfterSixtySeconds() {
        let wire = Wire()
        wire.send(Self.get)
        wire.respond(body: "ok")
        let answered = wire.received.count
        wire.advance(seconds: 59.9)
        wire.tick()
        #expect(!wire.closed)
        wire.advance(seconds: 0.1)
        wire.tick()
        #expect(wire.closed)
        #expect(wire.received.count == answered, "closed without a word")
    }

    @Test func aClientThatReadsNothingForSixtySecondsIsDropped() {
        let wire = Wire()
        wire.send(Self.get)
        wire.room = 10
        wire.respond(body: String(repeating: "x", count: 1000))
        wire.advance(seconds: 59)
        wire.tick()
        wire.clientReads(5)  // progress restarts the write timeout
        wire.advance(seconds: 59)
        wire.tick()
        #expect(!wire.closed)
        wire.advance(seconds: 1)
        wire.tick()
        #expect(wire.closed)
    }

    @Test func aHandlerTakingLongIsNotTimedOut() {
        let wire = Wire()
        wire.send(Self.get)
        wire.advance(seconds: 600)
        wire.tick()
        #expect(!wire.closed)
        wire.respond(body: "late")
        #expect(wire.statuses == [200])
    }

    // MARK: - Closing

    @Test func aClientClosingMidBodyIsClosedWithoutAnswer() {
        let wire = Wire()
        wire.send(Self.post(length: 10) + "abc")
        wire.peerCloses()
        #expect(wire.closed)
        #expect(wire.requests.isEmpty)
        #expect(wire.received.isEmpty)
    }

    @Test func aClientHalfClosingAfterItsRequestStillGetsTheAnswer() {
        let wire = Wire()
        wire.send(Self.get)
        wire.peerCloses()
        #expect(!wire.closed)
        wire.respond(body: "ok")
        #expect(wire.statuses == [200])
        #expect(wire.text.contains("Connection: close"))
        #expect(wire.closed)
    }

    @Test func shutdownClosesAnIdleConnectionAtOnce() {
        let wire = Wire()
        wire.send(Self.get)
        wire.respond(body: "ok")
        wire.shutdown()
        #expect(wire.closed)
    }

    @Test func shutdownLetsABusyConnectionAnswerThenCloses() {
        let wire = Wire()
        wire.send(Self.get)
        wire.shutdown()
        #expect(!wire.closed)
        wire.respond(body: "ok")
        #expect(wire.statuses == [200])
        #expect(wire.text.contains("Connection: close"))
        #expect(wire.writeSideShut)
    }

    @Test func shutdownLeavesAHalfReadHeadToFinishWith503() {
        let wire = Wire()
        wire.send("GET / HTTP/1.1\r\n")
        wire.shutdown()
        #expect(!wire.closed)
        wire.send("Host: x\r\n\r\n")
        #expect(wire.requests.isEmpty)
        #expect(wire.ownAnswers == [.shuttingDown])
        #expect(wire.statuses == [503])
    }

    @Test func aConnectionAcceptedDuringShutdownGets503() {
        let wire = Wire()
        wire.run(wire.machine.started(shuttingDown: true))
        #expect(wire.statuses == [503])
        #expect(wire.writeSideShut)
        if case .wait = wire.machine.started(shuttingDown: false) {} else { Issue.record("no answer when not shutting down") }
    }

    @Test func abortResetsOnlyForTheCurrentRequest() {
        let wire = Wire()
        wire.send(Self.get)
        wire.run(wire.machine.abort(sequence: 7))
        #expect(!wire.closed)
        wire.run(wire.machine.abort(sequence: 1))
        #expect(wire.wasReset)
        #expect(wire.closed)
    }

    // MARK: - Streaming

    func streamingWire(room: Int) -> (Wire, CountingSource) {
        let wire = Wire()
        wire.send(Self.get)
        wire.room = room
        var response = Response(status: 200, body: Array("start".utf8))
        response.streamed = true
        let source = CountingSource()
        let action = wire.machine.respond(
            response, streamingFrom: source, sequence: 1, now: wire.clock, shuttingDown: false)
        #expect(wire.machine.isStreaming)
        wire.run(action!)
        return (wire, source)
    }

    /// What `Connection.write(streamed:)` does.
    func write(_ wire: Wire, _ count: Int) -> Bool {
        let bytes = [UInt8](repeating: UInt8(ascii: "y"), count: count)
        let accepted = bytes.withUnsafeBytes {
            wire.machine.appendStreamed($0, sequence: 1, now: wire.clock)
        }
        guard accepted else { return false }
        if wire.machine.hasPendingOutput { wire.run(.write) }
        return wire.machine.streamHasRoom()
    }

    @Test func aStreamPausesAtTheHighWaterMarkAndResumesOnDrain() {
        let (wire, source) = streamingWire(room: 0)
        #expect(write(wire, 100 * 1024))
        #expect(write(wire, 100 * 1024))
        #expect(!write(wire, 100 * 1024), "over 256 KiB unsent: the source must wait")
        #expect(source.resumed == 0)
        wire.clientReads(200 * 1024)
        #expect(source.resumed == 0, "not drained yet")
        wire.clientReads()
        #expect(source.resumed == 1)
        #expect(write(wire, 10))
        wire.run(wire.machine.endStream(sequence: 1, now: wire.clock))
        #expect(wire.text.hasSuffix("\r\n0\r\n\r\n"))
        #expect(wire.text.contains("Transfer-Encoding: chunked"))
        #expect(wire.text.contains("5\r\nstart\r\n"))
        #expect(isIdle(wire))
        #expect(source.cancelled == 0)
        #expect(!write(wire, 1), "a writer after the end is refused")
    }

    @Test func aStreamWaitingForItsSourceIsNotTimedOut() {
        let (wire, source) = streamingWire(room: Int.max)
        wire.advance(seconds: 120)
        wire.tick()
        #expect(!wire.closed)
        wire.room = 0
        #expect(write(wire, 10))
        wire.advance(seconds: 60)
        wire.tick()
        #expect(wire.closed, "a client reading nothing for 60 s")
        #expect(source.cancelled == 1)
    }

    @Test func aStreamWithoutBodyCancelsNothingAndIsNotStreamed() {
        let wire = Wire()
        wire.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        var response = Response(status: 200)
        response.streamed = true
        response.declaredLength = 10
        let action = wire.machine.respond(
            response, streamingFrom: CountingSource(), sequence: 1, now: wire.clock, shuttingDown: false)
        #expect(!wire.machine.isStreaming, "the connection cancels the source")
        wire.run(action!)
        #expect(wire.text.contains("Content-Length: 10"))
        #expect(isIdle(wire))
    }

    @Test func anAbortedStreamClosesWithoutCancellingItsSource() {
        let (wire, source) = streamingWire(room: Int.max)
        wire.run(wire.machine.abortStream(sequence: 1))
        #expect(wire.closed)
        #expect(source.cancelled == 0)
        #expect(!write(wire, 1))
    }
}
