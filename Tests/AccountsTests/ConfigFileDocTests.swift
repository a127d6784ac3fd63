import Accounts
import Glibc
import Iamport
import Proxy
import Testing

/// docs/configuration.md against the code: the keys its tables document are
/// exactly the keys `ConfigFile` knows, and its examples are files the code
/// accepts, which between them use every key.
@Suite struct ConfigFileDocTests {
    static let packageRoot: String = {
        // #filePath is <root>/Tests/AccountsTests/ConfigFileDocTests.swift.
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    static func read(_ relativePath: String) throws -> String {
        let path = packageRoot + "/" + relativePath
        guard let handle = fopen(path, "rb") else { throw Failure("cannot read \(path)") }
        defer { fclose(handle) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, handle)
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// From `## <title>` to the next `## ` heading.
    static func section(_ page: String, _ title: String) throws -> Substring {
        let parts = page.split(separator: "\n## ", omittingEmptySubsequences: false)
        return try #require(parts.first { $0.hasPrefix(title + "\n") }, "no section '## \(title)'")
    }

    static func yamlBlocks(_ text: Substring) -> [String] {
        text.split(separator: "```yaml\n", omittingEmptySubsequences: false).dropFirst().compactMap { part in
            part.firstRange(of: "```").map { String(part[..<$0.lowerBound]) }
        }
    }

    /// Every secret file and variable exists, each with its own value (so
    /// client tokens differ), and every CA file is readable.
    static func resolve(_ file: ConfigFile) throws(ConfigFileError) -> [AccountConfiguration] {
        var environment: [String: String] = [:]
        for entry in file.accounts {
            for (key, value) in entry.values where key.hasSuffix("_env") { environment[value.text] = "env-\(value.text)" }
        }
        let files = FileAccess(
            readSecret: { path throws(SecretFile.Problem) in Secret("file-\(path)") }, isReadable: { _ in true })
        return try file.resolveAccounts(
            sharedListen: file.global["listen"]?.text ?? "127.0.0.1:8080", environment: environment, files: files)
    }

    @Test func theTablesDocumentExactlyTheKeysOfTheCode() throws {
        let section = try Self.section(try Self.read("docs/configuration.md"), "Config file")
        let row = try Regex(#"(?m)^\| `([a-z_]+)` \|"#)
        var documented: [String] = []
        for match in section.matches(of: row) {
            documented.append(String(section[match.range].dropFirst(3).prefix { $0 != "`" }))
        }
        let code = ["accounts"] + ConfigFile.globalKeys + ConfigFile.accountKeys
        let missing = Set(code).subtracting(documented).sorted()
        let unknown = Set(documented).subtracting(code).sorted()
        #expect(missing.isEmpty, "keys of the code missing from docs/configuration.md: \(missing)")
        #expect(unknown.isEmpty, "keys in docs/configuration.md the code does not know: \(unknown)")
        // listen twice (global and per account), every other key once.
        #expect(documented.count == code.count, "\(documented)")
    }

    @Test func theExamplesAreAcceptedAndUseEveryKey() throws {
        let page = try Self.read("docs/configuration.md")
        let blocks = Self.yamlBlocks(try Self.section(page, "Config file"))
        #expect(blocks.count >= 2)
        var used: Set<String> = []
        for block in blocks {
            let file: ConfigFile
            do {
                file = try ConfigFile.parse(block)
                _ = try Self.resolve(file)
            } catch {
                Issue.record("an example of docs/configuration.md is refused: \(error)\n\(block)")
                continue
            }
            used.formUnion(file.global.keys)
            used.insert("accounts")
            for entry in file.accounts {
                used.formUnion(entry.values.keys)
                used.insert("name")
                if entry.allow != nil { used.insert("allow") }
            }
        }
        let unused = Set(["accounts"] + ConfigFile.globalKeys + ConfigFile.accountKeys).subtracting(used).sorted()
        #expect(unused.isEmpty, "keys no example of docs/configuration.md shows: \(unused)")
    }

    @Test func theDockerExampleIsAccepted() throws {
        let file = try ConfigFile.parse(try Self.read("Docker/accounts.yaml"))
        let accounts = try Self.resolve(file)
        #expect(accounts.map(\.api) == [.v1, .v2])
        #expect(accounts.allSatisfy { $0.clientToken != nil && $0.listen == nil })
    }
}
