import FakeIamport
import Foundation
import TestSupport
import Testing

/// What the binary prints when it crashes, through the Swift runtime's
/// backtracer (found next to the runtime in a debug build). The binary
/// crashes on purpose once it holds a token (a test-only variable), with the
/// token's bytes in registers and on the stack.
@Suite(.serialized) struct CrashOutputTests {
    static let crashAfterToken = ["IAMPORT_PROXY_TEST_CRASH_AFTER_TOKEN": "1"]

    /// Runs the binary until its deliberate crash; returns its output and the token it held.
    func crash(environment: [String: String] = [:]) throws -> (output: String, reason: Process.TerminationReason, token: String) {
        let h = try BinaryHarness(environment: Self.crashAfterToken.merging(environment) { _, new in new })
        _ = h.proxy.wait(seconds: 60)
        h.fake.stop()
        let token = try #require(h.fake.issuedTokens.first, "the crash comes after a token was fetched")
        return (h.proxy.text, h.proxy.process.terminationReason, token)
    }

    @Test func aCrashPrintsAStackButNoRegistersMemoryOrSecret() throws {
        let (output, reason, token) = try crash()
        #expect(reason == .uncaughtSignal)
        #expect(output.contains("*** Program crashed: Bad pointer dereference"), "\(output)")
        // Symbolicated: the crashing function by name, with every thread.
        #expect(output.contains("DeliberateCrash.crash(holding:)"), "\(output)")
        #expect(output.contains("EventLoop.run()"))
        #expect(!output.contains("Registers:"))
        #expect(!output.contains("Images"))
        #expect(traces(of: token, in: output).isEmpty, "the token shows: \(traces(of: token, in: output))")
        #expect(traces(of: BinaryHarness.apiSecret, in: output).isEmpty)
        #expect(!output.contains("SWIFT_BACKTRACE lets a crash print registers"))
    }

    @Test func theOperatorsOwnSettingTurnsFullDumpsOnWithAWarning() throws {
        let (output, reason, token) = try crash(environment: ["SWIFT_BACKTRACE": "interactive=no,preset=full"])
        #expect(reason == .uncaughtSignal)
        #expect(output.contains("warning SWIFT_BACKTRACE lets a crash print registers and memory"), "\(output)")
        #expect(output.contains("Registers:"), "\(output)")
        // What the safe settings hide: the crash function holds the token where the dump shows it.
        #expect(!traces(of: token, in: output).isEmpty, "\(output)")
    }

    /// The warning at start follows what the operator's value would print.
    @Test(arguments: [
        ("registers=none,interactive=no", false), ("enable=no", false), ("preset=friendly", false),
        ("REGISTERS=NONE", false), ("registers=none,registers=all", true), ("registers=crashed", true),
        ("preset=medium", true), ("registers=none,format=json", true), ("enable=yes", true),
        ("Registers = None", true),  // the runtime trims nothing: an unknown key, so the preset's registers
    ])
    func theWarningAboutAnOperatorsSetting(value: String, warns: Bool) throws {
        let h = try BinaryHarness(environment: ["SWIFT_BACKTRACE": value])
        #expect(h.waitUntilReady())
        #expect(h.stop() == 0)
        #expect(h.proxy.text.contains("SWIFT_BACKTRACE lets a crash print registers") == warns, "\(h.proxy.text)")
    }

    /// Each spelling in which a crash report could show 8 consecutive bytes
    /// of `secret`: as text, as hex in memory order (spaced as in a memory
    /// dump, or not), and as the value of a little-endian register holding them.
    func traces(of secret: String, in output: String) -> [String] {
        let bytes = Array(secret.utf8)
        let text = output.lowercased()
        let width = min(8, bytes.count)
        var found: [String] = []
        for start in 0...(bytes.count - width) {
            let chunk = bytes[start..<(start + width)]
            let hex = chunk.map { String($0, radix: 16).leftPadded(to: 2) }
            let spellings = [
                String(decoding: chunk, as: UTF8.self).lowercased(),
                hex.joined(), hex.joined(separator: " "), hex.reversed().joined(),
            ]
            found += spellings.filter { text.contains($0) }
        }
        return found
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
