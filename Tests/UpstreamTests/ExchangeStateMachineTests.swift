import HTTP1
import Testing
@testable import Upstream

@Suite struct ExchangeStateMachineTests {
    // MARK: Writing

    @Test func theRequestIsWrittenInPiecesThenTheAnswerAwaited() {
        var machine = ExchangeStateMachine(totalBytes: 10, resendable: true, isHead: false, maxResponseBytes: 100,
                                           timeout: second, deadline: second)
        #expect(machine.state.sent == 0)
        #expect(machine.wrote(4) == .writeMore(from: 4))
        #expect(machine.wrote(5) == .writeMore(from: 9))
        #expect(machine.wrote(1) == .awaitAnswer)
        #expect(machine.state.isAwaitingHead)
        #expect(!machine.heardAny)
    }

    // MARK: Heads and bodies in pieces

    @Test func aHeadSplitAnywhereGivesTheSameAnswer() {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello"
        let bytes = Array(text.utf8)
        for split in 1..<bytes.count {
            var script = ExchangeScript()
            #expect(script.feed(Array(bytes[..<split])).isNone, "split at \(split)")
            #expect(script.machine.heardAny)
            guard let (answer, reusable) = script.feed(Array(bytes[split...])).delivered else {
                Issue.record("no answer, split at \(split)")
                continue
            }
            #expect(answer.status == 200)
            #expect(answer.body == Array("hello".utf8))
            #expect(answer.declaredLength == 5)
            #expect(String(decoding: answer.headerBlock, as: UTF8.self) == "Content-Type: application/json\r\n")
            #expect(reusable)
            #expect(script.machine.state.isDone)
        }
    }

    @Test func aHeadByteByByteAfterAnInterimAnswer() {
        var script = ExchangeScript()
        let actions = script.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx", inPiecesOf: 1)
        let allNone = actions.dropLast().allSatisfy { $0.isNone }
        #expect(allNone)
        #expect(actions.last?.delivered?.answer.status == 201)
        #expect(actions.last?.delivered?.answer.body == Array("x".utf8))
    }

    @Test func aLengthBodyInPieces() throws {
        var script = ExchangeScript()
        #expect(script.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n012").isNone)
        #expect(script.feed("3456").isNone)
        let (answer, reusable) = try #require(script.feed("789").delivered)
        #expect(answer.body == Array("0123456789".utf8))
        #expect(reusable)
    }

    @Test func bytesPastTheAnswersEndMakeTheConnectionUnfitForReuse() throws {
        var script = ExchangeScript()
        let (answer, reusable) = try #require(script.feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP").delivered)
        #expect(answer.body == Array("ok".utf8))
        #expect(!reusable)
    }

    @Test func connectionCloseMakesTheConnectionUnfitForReuse() throws {
        var script = ExchangeScript()
        let (_, reusable) = try #require(script.feed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").delivered)
        #expect(!reusable)
    }

    @Test func aChunkedBodyByteByByte() throws {
        var script = ExchangeScript()
        let actions = script.feed(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n", inPiecesOf: 1)
        let allNone = actions.dropLast().allSatisfy { $0.isNone }
        #expect(allNone)
        let (answer, reusable) = try #require(actions.last?.delivered)
        #expect(answer.body == Array("hello world".utf8))
        #expect(answer.declaredLength == nil)
        #expect(reusable)
    }

    @Test func aMalformedChunkFails() {
        var script = ExchangeScript()
        let action = script.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        #expect(action.failure == .failed("malformed chunked answer from the upstream"))
        #expect(script.machine.state.isDone)
    }

    @Test func aCloseDelimitedBodyEndsWithTheConnection() throws {
        var script = ExchangeScript()
        #expect(script.feed("HTTP/1.1 200 OK\r\n\r\nabc").isNone)
        #expect(script.feed("def").isNone)
        let (answer, reusable) = try #require(script.machine.connectionClosed().delivered)
        #expect(answer.body == Array("abcdef".utf8))
        #expect(!reusable)
    }

    // MARK: Answers without a body

    @Test(arguments: [(Method.head, 200), (Method.get, 204), (Method.get, 304)])
    func answersWithoutABodyEndWithTheirHead(_ method: Method, _ status: Int) throws {
        var script = ExchangeScript(method: method)
        let (answer, reusable) = try #require(script.feed("HTTP/1.1 \(status) X\r\nContent-Length: 10\r\n\r\n").delivered)
        #expect(answer.status == status)
        #expect(answer.body.isEmpty)
        #expect(answer.declaredLength == 10, "kept for the answer to HEAD")
        #expect(reusable)
    }

    @Test func anAnswerToHeadFollowedByBytesIsNotReused() throws {
        var script = ExchangeScript(method: .head)
        let (_, reusable) = try #require(script.feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc").delivered)
        #expect(!reusable)
    }

    @Test func a401HeadIsAnAnswerLikeAnyOther() throws {
        var script = ExchangeScript(method: .post)
        let (answer, reusable) = try #require(
            script.feed("HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}").delivered)
        #expect(answer.status == 401)
        #expect(answer.reason == nil, "the usual phrase is the serializer's")
        #expect(answer.body == Array("{}".utf8))
        #expect(reusable)
    }

    // MARK: Malformed answers fail at once, never retried

    @Test(arguments: [
        "HTTP/1.1 200 OK\nContent-Length: 0\n",  // bare LF, no blank line yet
        "HTTP/1.1 2000 OK\r\n\r\n",
        "garbage\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ])
    func aMalformedHeadFailsAtOnce(_ text: String) {
        var script = ExchangeScript(onReusedConnection: true)
        #expect(script.feed(text).failure != nil)
        #expect(script.machine.state.isDone)
        #expect(!script.machine.retried)
    }

    @Test func switchingProtocolsFails() {
        var script = ExchangeScript()
        #expect(script.feed("HTTP/1.1 101 Switching Protocols\r\n\r\n").failure == .failed("the upstream switched protocols"))
    }

    @Test func aDeclaredLengthOverTheLimitFails() {
        var script = ExchangeScript(maxResponseBytes: 10)
        #expect(script.feed("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n").failure
                == .failed("upstream answer larger than 10 bytes"))
    }

    @Test func aCloseDelimitedBodyOverTheLimitFails() {
        var script = ExchangeScript(maxResponseBytes: 10)
        #expect(script.feed("HTTP/1.1 200 OK\r\n\r\n0123456789").isNone)
        #expect(script.feed("x").failure == .failed("upstream answer larger than 10 bytes"))
    }

    // MARK: The retry rule

    @Test(arguments: [Method.get, .head, .options])
    func aSafeRequestOnAReusedConnectionThatBreaksBeforeAnyByteGoesOnceMore(_ method: Method) {
        var script = ExchangeScript(method: method, onReusedConnection: true)
        #expect(script.machine.connectionClosed().isRetry)
        #expect(script.machine.retried)
        #expect(script.machine.state.sent == 0, "written again from the start")
        // On the fresh connection, which breaks too: no second retry.
        _ = script.machine.wrote(ExchangeScript.requestBytes)
        #expect(script.machine.connectionBroke("reset").failure == .failed("reset"))
    }

    @Test func aRetriedRequestIsNeverRetriedTwiceEvenOnAReusedConnection() {
        var script = ExchangeScript(onReusedConnection: true)
        #expect(script.machine.connectionBroke("reset").isRetry)
        script.machine.onReusedConnection = true
        _ = script.machine.wrote(ExchangeScript.requestBytes)
        #expect(script.machine.connectionBroke("reset").failure == .failed("reset"))
    }

    @Test(arguments: [Method.post, .put, .patch, .delete])
    func aPaymentCallIsNeverSentTwice(_ method: Method) {
        var script = ExchangeScript(method: method, onReusedConnection: true)
        let error = script.machine.connectionClosed().failure
        #expect(error == .failed("the upstream closed the connection without answering; "
                                 + "the request was not re-sent, and may or may not have been applied"))
        #expect(!script.machine.retried)
        #expect(script.machine.state.isDone)
    }

    @Test func aPaymentCallThatBreaksWhileWritingIsNotSentTwice() {
        var machine = ExchangeStateMachine(totalBytes: 10, resendable: false, isHead: false, maxResponseBytes: 100,
                                           timeout: second, deadline: second)
        machine.onReusedConnection = true
        _ = machine.wrote(3)
        #expect(machine.connectionBroke("sending the request failed").failure
                == .failed("sending the request failed; the request was not re-sent, and may or may not have been applied"))
    }

    @Test func aResendableRequestWithAnIdempotencyKeyGoesOnceMore() {
        var script = ExchangeScript(method: .post, resendable: true, onReusedConnection: true)
        #expect(script.machine.connectionBroke("reset").isRetry)
    }

    @Test func aFreshConnectionThatBreaksIsNotRetried() {
        var script = ExchangeScript(onReusedConnection: false)
        #expect(script.machine.connectionClosed().failure == .failed("the upstream closed the connection without answering"))
    }

    @Test func breakingAfterSomeBytesFailsEvenForASafeRequest() {
        var script = ExchangeScript(onReusedConnection: true)
        #expect(script.feed("HTTP/1.1 200").isNone)
        #expect(script.machine.connectionClosed().failure
                == .failed("the upstream closed the connection in the middle of its answer"))
        #expect(!script.machine.retried)
    }

    @Test func anInterimAnswerCountsAsHeard() {
        var script = ExchangeScript(method: .post, onReusedConnection: true)
        #expect(script.feed("HTTP/1.1 100 Continue\r\n\r\n").isNone)
        #expect(script.machine.heardAny)
        #expect(script.machine.connectionBroke("reset").failure == .failed("reset"), "it reached the server")
    }

    @Test func breakingMidBodyFails() {
        var script = ExchangeScript(onReusedConnection: true)
        #expect(script.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01").isNone)
        #expect(script.machine.connectionBroke("reset").failure == .failed("reset"))
    }

    // MARK: The timeout

    @Test func theTimeoutFiresAtItsDeadlineAndNotBefore() {
        var script = ExchangeScript(timeout: 30 * second)
        #expect(script.machine.deadlineReached(now: 0).isNone)
        #expect(script.machine.deadlineReached(now: 30 * second - 1).isNone)
        #expect(script.machine.deadlineReached(now: 30 * second).failure == .timeout)
        #expect(script.machine.state.isDone)
        #expect(script.machine.deadlineReached(now: 31 * second).isNone, "once")
    }

    @Test func aRetryKeepsTheFirstDeadline() {
        var script = ExchangeScript(onReusedConnection: true, timeout: 30 * second)
        #expect(script.machine.connectionClosed().isRetry)
        #expect(script.machine.deadlineReached(now: 30 * second).failure == .timeout)
    }

    @Test func aBodyThatStopsComingTimesOut() {
        var script = ExchangeScript(timeout: 30 * second)
        #expect(script.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01").isNone)
        #expect(script.machine.deadlineReached(now: 30 * second).failure == .timeout)
    }

    // MARK: Streaming

    /// A head declaring `length` bytes, then `length` bytes in pieces of 16 KiB.
    @Test func aLargeAnswerStreamsPausingAtTheHighWaterMark() throws {
        let length = 400 * 1024
        let piece = [UInt8](repeating: UInt8(ascii: "a"), count: 16 * 1024)
        var script = ExchangeScript(timeout: 30 * second)
        #expect(script.feed("HTTP/1.1 200 OK\r\nContent-Length: \(length)\r\n\r\n").isNone)
        var fed = 0
        // Buffered until 64 KiB have come: then the head and those bytes go over.
        var handedOver: UpstreamResponse?
        while handedOver == nil {
            let action = script.feed(piece)
            fed += piece.count
            if let answer = action.handedOver { handedOver = answer } else { #expect(action.isNone) }
        }
        #expect(fed == ExchangeStateMachine.streamThreshold)
        #expect(handedOver?.body.count == ExchangeStateMachine.streamThreshold)
        #expect(handedOver?.declaredLength == length)
        #expect(script.machine.isStreaming)

        // A sink that holds 256 KiB before its client reads.
        let highWater = 256 * 1024
        var queued = 0
        var now: UInt64 = 0
        while !script.machine.isPaused {
            now += second
            guard let (forwarded, then) = script.feed(piece).forwarded else {
                Issue.record("not forwarded")
                return
            }
            #expect(forwarded == .input(0..<piece.count))
            #expect(then == .readOn)
            fed += piece.count
            queued += piece.count
            if queued < highWater { script.machine.sinkTook(now: now) } else { script.machine.streamPaused() }
            if !script.machine.isPaused {
                #expect(script.machine.deadline == now + 30 * second, "each stretch of the body is bounded")
            }
        }
        #expect(queued == highWater)
        #expect(script.machine.deadlineReached(now: now + 3600 * second).isNone, "no upstream timeout while paused")
        let resumed = script.machine.streamResumed(now: now)
        #expect(resumed)
        #expect(!script.machine.isPaused)
        #expect(script.machine.deadline == now + 30 * second)
        let resumedAgain = script.machine.streamResumed(now: now)
        #expect(!resumedAgain, "resuming a stream that runs does nothing")

        while fed + piece.count < length {
            #expect(script.feed(piece).forwarded?.then == .readOn)
            fed += piece.count
        }
        let last = Array(piece[..<(length - fed)]) + Array("extra".utf8)
        let (forwarded, then) = try #require(script.feed(last).forwarded)
        #expect(forwarded == .input(0..<(length - fed)))
        #expect(then == .end(reusable: false), "bytes past the end")
        #expect(script.streamed.count == length - ExchangeStateMachine.streamThreshold)
        #expect(script.machine.state.isDone)
    }

    @Test func aStreamedChunkedBodyGoesThroughTheDecodedBuffer() {
        var script = ExchangeScript()
        #expect(script.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").isNone)
        let chunk = String(repeating: "b", count: 0x10000)
        #expect(script.feed("10000\r\n\(chunk)\r\n").handedOver?.body.count == 0x10000)
        #expect(script.feed("3\r\nxyz\r\n").forwarded.map { $0.piece == .decoded && $0.then == .readOn } == true)
        #expect(script.feed("0\r\n\r\n").forwarded.map { $0.piece == .decoded && $0.then == .end(reusable: true) } == true)
        #expect(script.streamed == Array("xyz".utf8))
    }

    @Test func aStreamedCloseDelimitedBodyEndsWithTheConnection() throws {
        var script = ExchangeScript()
        #expect(script.feed("HTTP/1.1 200 OK\r\n\r\n").isNone)
        #expect(script.feed([UInt8](repeating: 0, count: 70_000)).handedOver != nil)
        #expect(script.feed("more").forwarded?.then == .readOn)
        let end = try #require(script.machine.connectionClosed().forwarded)
        #expect(end.piece == .input(0..<0))
        #expect(end.then == .end(reusable: false))
    }

    @Test func aStreamedLengthBodyCutShortFails() {
        var script = ExchangeScript()
        #expect(script.feed("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n").isNone)
        #expect(script.feed([UInt8](repeating: 0, count: 70_000)).handedOver != nil)
        #expect(script.machine.connectionClosed().failure
                == .failed("the upstream closed the connection in the middle of its answer"))
    }

    @Test func aCancelledStreamFails() {
        var script = ExchangeScript()
        #expect(script.feed("HTTP/1.1 200 OK\r\n\r\n").isNone)
        #expect(script.feed([UInt8](repeating: 0, count: 70_000)).handedOver != nil)
        #expect(script.machine.cancelled().failure == .failed("the answer was not wanted any more"))
        #expect(script.machine.state.isDone)
    }

    @Test func theKeepAliveTimeoutOfTheAnswerIsKept() {
        var script = ExchangeScript()
        #expect(script.feed("HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n").delivered != nil)
        #expect(script.machine.keepAliveSeconds == 5)
    }
}
