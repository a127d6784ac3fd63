import Iamport
import Proxy
import Testing

func account(_ name: String, _ api: AccountAPI = .v1, token: String? = nil, listen: String? = nil) -> AccountConfiguration {
    AccountConfiguration(
        name: name, api: api, listen: listen, apiKey: api == .v1 ? Secret("k") : nil, apiSecret: Secret("s"),
        clientToken: token.map(Secret.init))
}

@Suite struct AccountSelectorTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let accounts: [AccountConfiguration]
        let listener: AccountListener
        let token: String?
        var api: AccountAPI? = nil
        let expected: String?
        var testDescription: String {
            "\(accounts.map(\.name)) on \(listener) with \(token ?? "no token")\(api.map { " for \($0)" } ?? "") → \(expected ?? "none")"
        }
    }

    static let several = [
        account("a", token: "tok-a"), account("b", .v2, token: "tok-b"), account("own", .v2, listen: "127.0.0.1:9001"),
    ]
    static let lone = [account("a"), account("own", .v2, token: "tok-own", listen: "127.0.0.1:9001")]

    static let cases: [Case] = [
        // Several accounts on the shared listener: the token selects.
        Case(accounts: several, listener: .shared, token: "tok-a", expected: "a"),
        Case(accounts: several, listener: .shared, token: "tok-b", expected: "b"),
        Case(accounts: several, listener: .shared, token: nil, expected: nil),
        Case(accounts: several, listener: .shared, token: "tok-c", expected: nil),
        Case(accounts: several, listener: .shared, token: "tok-", expected: nil),
        Case(accounts: several, listener: .shared, token: "", expected: nil),
        // An account with its own listener is served only there, whatever the token.
        Case(accounts: several, listener: .own(2), token: nil, expected: "own"),
        Case(accounts: several, listener: .own(2), token: "tok-a", expected: "own"),
        Case(accounts: several, listener: .own(0), token: "tok-a", expected: nil),
        Case(accounts: several, listener: .own(7), token: nil, expected: nil),
        // Exactly one account on the shared listener: it serves, token or not.
        Case(accounts: lone, listener: .shared, token: nil, expected: "a"),
        Case(accounts: lone, listener: .shared, token: "anything", expected: "a"),
        Case(accounts: lone, listener: .shared, token: "tok-own", expected: "a"),
        Case(accounts: lone, listener: .own(1), token: nil, expected: "own"),
        // No account on the shared listener.
        Case(accounts: [account("own", listen: "127.0.0.1:9001")], listener: .shared, token: nil, expected: nil),
        // A local getToken is for V1 accounts only.
        Case(accounts: several, listener: .shared, token: "tok-a", api: .v1, expected: "a"),
        Case(accounts: several, listener: .shared, token: "tok-b", api: .v1, expected: nil),
        Case(accounts: several, listener: .own(2), token: nil, api: .v1, expected: nil),
        Case(accounts: [account("v2", .v2)], listener: .shared, token: nil, api: .v1, expected: nil),
    ]

    @Test(arguments: cases)
    func selectsTheAccountThatServes(_ c: Case) {
        let selector = AccountSelector(c.accounts)
        let index = selector.select(listener: .init(c.listener), clientToken: c.token.map { Array($0.utf8)[...] }, api: c.api)
        #expect(index.map { selector.accounts[$0].name } == c.expected)
    }
}

extension AccountListener {
    init(_ other: AccountListener) { self = other }
}
