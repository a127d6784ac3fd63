@testable import Accounts
import Dispatch
import EventLoops
import Glibc
import Synchronization
import Testing


@Suite struct WatchedPathsTests {
    @Test func theConfigFileThenEveryFileItsAccountsName() throws {
        let file = try ConfigFile.parse(
            """
            accounts:
              - name: shop-a
                api: v1
                api_key: imp_key
                api_secret_file: /s/a-secret
                client_token_env: A_CLIENT
                upstream_ca_file: /etc/ca.pem
              - name: shop-b
                api: v2
                api_secret_file: /s/b-secret
                client_token_file: /s/b-client
                upstream_ca_file: /etc/ca.pem
              - name: shop-c
                api: v1
                api_key_file: /s/c-key
                api_secret_env: C_SECRET
            """)
        #expect(
            file.watchedPaths(configPath: "/etc/proxy.yaml") == [
                "/etc/proxy.yaml", "/s/a-secret", "/etc/ca.pem", "/s/b-secret", "/s/b-client", "/s/c-key",
            ])
    }

    /// A file key added to the config file must be watched too.
    @Test func everyFileKeyOfAnAccountIsWatched() {
        let fileKeys = ConfigFile.accountKeys.filter { $0.hasSuffix("_file") }
        #expect(Set(fileKeys) == Set(ConfigFile.fileKeys))
    }
}
