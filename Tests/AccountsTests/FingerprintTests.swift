@testable import Accounts
import Dispatch
import EventLoops
import Glibc
import Synchronization
import Testing


@Suite struct FingerprintTests {
    @Test func itFollowsLinksAndSeesContentAndPresence() throws {
        let dir = try TempDirectory()
        defer { dir.remove() }
        let file = dir.file("f")
        let missing = FileFingerprint(of: file)
        #expect(missing.error == ENOENT)
        try writeInPlace(file, "abc")
        let first = FileFingerprint(of: file)
        #expect(first.error == 0 && first.size == 3 && first.content != nil)
        #expect(first == FileFingerprint(of: file))
        #expect(symlink(file, dir.file("link")) == 0)
        let viaLink = FileFingerprint(of: dir.file("link"))
        #expect(viaLink.inode == first.inode && viaLink.resolved == first.resolved && viaLink.content == first.content)
        // A directory has no content hash; a dangling link is missing.
        #expect(FileFingerprint(of: dir.path).content == nil)
        #expect(symlink(dir.file("nowhere"), dir.file("dangling")) == 0)
        #expect(FileFingerprint(of: dir.file("dangling")).error == ENOENT)
    }
}
