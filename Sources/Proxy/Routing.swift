import EventLoops
import HTTP1
import Iamport
import Synchronization
import Upstream

/// Which listener a handler serves: the shared one (0) or an account's own.
/// Listeners are fixed at start; reloads keep them.
struct ListenerID: Hashable, Sendable {
    let index: Int
    static let shared = ListenerID(index: 0)
}

/// One generation of the configuration: the accounts and who serves what.
final class Routing: Sendable {
    let accounts: [ServedAccount]
    let selector: AccountSelector
    /// For each own listener (by `ListenerID.index - 1`), the name of its account.
    let ownListenerAccounts: [String]
    /// The same as indexes into `accounts`, found once, not per request.
    private let ownListenerIndexes: [Int?]
    let generation: UInt64

    init(accounts: [ServedAccount], ownListenerAccounts: [String], generation: UInt64) {
        self.accounts = accounts
        self.selector = AccountSelector(accounts.map(\.configuration))
        self.ownListenerAccounts = ownListenerAccounts
        self.ownListenerIndexes = ownListenerAccounts.map { name in accounts.firstIndex { $0.name == name } }
        self.generation = generation
    }

    func account(named name: String) -> ServedAccount? {
        accounts.first { $0.name == name }
    }

    /// The listener as the selector knows it.
    func selectorListener(_ listener: ListenerID) -> AccountListener? {
        guard listener.index > 0 else { return .shared }
        return ownListenerIndexes[listener.index - 1].map { .own($0) }
    }

    /// The account that serves a request arriving on `listener` (its client
    /// token not yet checked), or nil when none does.
    func select(_ head: RequestHead, on listener: ListenerID) -> ServedAccount? {
        guard let where_ = selectorListener(listener) else { return nil }
        let index = selector.select(listener: where_) { account in
            guard let token = account.clientToken else { return false }
            return ClientCredential.presents(token, in: head, api: account.api)
        }
        return index.map { accounts[$0] }
    }

    /// The API whose error shape a listener's answers take before an
    /// account is chosen: its one account's, else V1's (SPEC: "a request
    /// that selects no account: 401 in the V1 envelope").
    func shape(of listener: ListenerID) -> AccountAPI {
        if listener.index > 0 {
            return ownListenerIndexes[listener.index - 1].map { accounts[$0].api } ?? .v1
        }
        return selector.sharedCount == 1 ? accounts[selector.sharedIndexes[0]].api : .v1
    }
}

/// The configuration in force, replaced whole by a reload. Loops keep the
/// generation they last saw and take the new one when it changes: one
/// relaxed atomic load per request.
final class RoutingState: Sendable {
    private let current: Mutex<Routing>
    private let generation: Atomic<UInt64>

    init(_ routing: Routing) {
        current = Mutex(routing)
        generation = Atomic(routing.generation)
    }

    var routing: Routing { current.withLock { $0 } }
    var currentGeneration: UInt64 { generation.load(ordering: .acquiring) }

    func replace(_ routing: Routing) {
        current.withLock { $0 = routing }
        generation.store(routing.generation, ordering: .releasing)
    }
}
