import EventLoops
import Foundation
import Synchronization
import TestSupport
import Testing
import Upstream

/// A one-connection upstream that answers each request with scripted pieces,
/// pausing between them, so that an answer arrives in several reads.
final class ScriptedUpstream: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let thread: Thread

    init(answers: [[String]]) throws {
        let (fd, port) = TestListener.open(backlog: 4)
        self.port = port
        listener = fd
        thread = Thread {
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            var pending: [UInt8] = []
            for pieces in answers {
                // Wait for one whole request head.
                while pending.firstRange(of: Array("\r\n\r\n".utf8)) == nil {
                    var chunk = [UInt8](repeating: 0, count: 4096)
                    let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                    if n <= 0 { close(client); return }
                    pending += chunk[0..<n]
                }
                pending.removeSubrange(..<pending.firstRange(of: Array("\r\n\r\n".utf8))!.upperBound)
                for piece in pieces {
                    _ = Array(piece.utf8).withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    usleep(30_000)
                }
            }
            close(client)
        }
        thread.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}

@Suite(.serialized) struct UpstreamClientTests {
    private func exchange(_ upstream: ScriptedUpstream, _ paths: [String]) throws -> [Result<UpstreamResponse, UpstreamError>] {
        let loop = try EventLoop(index: 0)
        loop.start()
        defer { loop.stopAndJoin() }
        let client = UpstreamClient(
            loop: loop, configuration: UpstreamConfiguration(baseURL: "http://127.0.0.1:\(upstream.port)", timeout: .milliseconds(3000)))
        let results = Mutex<[Result<UpstreamResponse, UpstreamError>]>([])
        let done = DispatchSemaphore(value: 0)
        for path in paths {
            loop.execute {
                let request = UpstreamRequest(method: .get, methodName: "GET", pathAndQuery: Array(path.utf8), headerLines: [], body: nil)
                client.send(request) { result in
                    results.withLock { $0.append(result) }
                    done.signal()
                }
            }
            #expect(done.wait(timeout: .now() + 5) == .success)
        }
        loop.execute { client.close() }
        return results.withLock { $0 }
    }

    @Test func answerHeadsSplitAcrossReadsAndInterimAnswers() throws {
        let upstream = try ScriptedUpstream(answers: [
            ["HTTP/1.1 200 OK\r\nContent-Ty", "pe: application/json\r\nContent-Length: 4\r\n", "\r\nab", "cd"],
            ["HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
            ["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 20", "1 Created\r\nContent-Length: 1\r\n\r\nx"],
        ])
        defer { upstream.stop() }
        let results = try exchange(upstream, ["/one", "/two", "/three"])
        guard results.count == 3, case .success(let first) = results[0], case .success(let second) = results[1],
            case .success(let third) = results[2]
        else {
            Issue.record("\(results)")
            return
        }
        #expect(first.status == 200)
        #expect(first.body == Array("abcd".utf8))
        #expect(String(decoding: first.headerBlock, as: UTF8.self) == "Content-Type: application/json\r\n")
        #expect(second.status == 200)
        #expect(second.body == Array("ok".utf8), "the interim answer is skipped, its fields dropped")
        #expect(String(decoding: second.headerBlock, as: UTF8.self) == "")
        #expect(third.status == 201, "an interim answer, then the final one split across reads")
        #expect(third.body == Array("x".utf8))
    }
}
