import Iamport

/// The listener a request arrived on.
public enum AccountListener: Hashable, Sendable {
    /// The process's shared listener (`listen`).
    case shared
    /// The own listener of the account at this index.
    case own(Int)
}

/// Which account serves a request (SPEC.md, "Which account serves a request").
///
/// An account with its own listener is served only there. On the shared
/// listener, when exactly one account is there it serves every request (its
/// client token, if any, is then checked as in single-account mode, by the
/// caller); when several are, the presented client token selects the one
/// whose token it is, and no token or another token selects none.
///
/// Selection is not authentication: on a listener with one account the
/// caller still checks that account's client token.
public struct AccountSelector: Sendable {
    public let accounts: [AccountConfiguration]
    /// Indexes of the accounts on the shared listener.
    private let shared: [Int]

    public var sharedIndexes: [Int] { shared }
    public var sharedCount: Int { shared.count }

    public init(_ accounts: [AccountConfiguration]) {
        self.accounts = accounts
        shared = accounts.indices.filter { accounts[$0].isShared }
    }

    /// The index in `accounts` of the account that serves a request that
    /// arrived on `listener` presenting `clientToken` (nil: none presented),
    /// or nil when none does (401 `client_unauthorized`). `api` restricts the
    /// choice (a local getToken is for V1 accounts only).
    public func select(listener: AccountListener, clientToken: ArraySlice<UInt8>?, api: AccountAPI? = nil) -> Int? {
        select(listener: listener, api: api) { account in
            guard let clientToken else { return false }
            return account.clientToken?.constantTimeEquals(clientToken) == true
        }
    }

    /// The same, with `presents` telling whether the request carries an
    /// account's client token (in the form its API's SDKs send it).
    public func select(listener: AccountListener, api: AccountAPI? = nil,
                       presents: (AccountConfiguration) -> Bool) -> Int? {
        let chosen: Int?
        switch listener {
        case .own(let index):
            chosen = accounts.indices.contains(index) && !accounts[index].isShared ? index : nil
        case .shared:
            if shared.count == 1 {
                chosen = shared[0]
            } else {
                // Ask every account, so the time taken does not tell which one
                // matched (their tokens are distinct: at most one does).
                var match: Int?
                for index in shared where accounts[index].clientToken != nil {
                    if presents(accounts[index]) { match = index }
                }
                chosen = match
            }
        }
        guard let chosen else { return nil }
        if let api, accounts[chosen].api != api { return nil }
        return chosen
    }
}
