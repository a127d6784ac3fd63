@testable import Accounts
import Dispatch
import EventLoops
import Glibc
import Synchronization
import Testing


/// The reporting rules alone, poll by poll.
@Suite struct ChangeDetectorTests {
    let a = FileFingerprint(error: ENOENT)
    let b = FileFingerprint(error: EACCES)
    let c = FileFingerprint(error: ELOOP)

    func detector(_ start: FileFingerprint) -> ChangeDetector {
        var detector = ChangeDetector(paths: ["p"])
        detector.reset(to: ["p": start])
        return detector
    }

    @Test func aSettledChangeIsReportedAtTheSecondPoll() {
        var d = detector(a)
        #expect(d.observe(["p": a]) == nil)
        #expect(d.observe(["p": b]) == nil)
        #expect(d.observe(["p": b]) == ["p"])
        #expect(d.observe(["p": b]) == nil)
    }

    @Test func aChangeStillMovingIsReportedAtTheThirdPoll() {
        var d = detector(a)
        #expect(d.observe(["p": b]) == nil)
        #expect(d.observe(["p": c]) == nil)
        #expect(d.observe(["p": b]) == ["p"])
        // Then measured from what was reported.
        #expect(d.observe(["p": c]) == nil)
        #expect(d.observe(["p": c]) == ["p"])
    }

    @Test func aChangeUndoneBeforeItSettlesIsNotReported() {
        var d = detector(a)
        #expect(d.observe(["p": b]) == nil)
        #expect(d.observe(["p": a]) == nil)
        #expect(d.observe(["p": a]) == nil)
        #expect(d.observe(["p": a]) == nil)
    }

    @Test func onlyTheChangedPathsAreNamed() {
        var d = ChangeDetector(paths: ["p", "q", "r"])
        d.reset(to: ["p": a, "q": a, "r": a])
        #expect(d.observe(["p": a, "q": b, "r": b]) == nil)
        #expect(d.observe(["p": a, "q": b, "r": b]) == ["q", "r"])
    }

    @Test func replacingKeepsTheBaselineOfPathsKept() {
        var d = detector(a)
        #expect(d.observe(["p": b]) == nil)
        d.replace(paths: ["p", "q"], added: ["q": a])
        #expect(d.observe(["p": b, "q": a]) == ["p"])
        d.replace(paths: ["q"], added: [:])
        #expect(d.baseline.keys.sorted() == ["q"])
    }
}
