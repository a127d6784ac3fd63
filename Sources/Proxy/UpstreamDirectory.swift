import EventLoops
import HTTP1
import Iamport
import Synchronization
import Upstream

/// Where an upstream client is: its base URL and CA file.
struct UpstreamKey: Hashable, Sendable {
    var baseURL: String
    var caFile: String?
}

/// Every upstream the process has reached, each with a slot number that
/// indexes the loops' clients. Slots are never reused, so a request that
/// started before a reload still finds its client.
final class UpstreamDirectory: Sendable {
    private struct State {
        var keys: [UpstreamKey] = []
        var clients: [UpstreamClient] = []
    }

    /// Timeouts and limits every upstream client shares.
    let template: UpstreamConfiguration
    private let state = Mutex(State())

    init(template: UpstreamConfiguration) {
        self.template = template
    }

    func slot(for key: UpstreamKey) -> Int {
        state.withLock { s in
            if let slot = s.keys.firstIndex(of: key) { return slot }
            s.keys.append(key)
            return s.keys.count - 1
        }
    }

    func configuration(slot: Int) -> UpstreamConfiguration {
        let key = state.withLock { $0.keys[slot] }
        var configuration = template
        configuration.baseURL = UpstreamConfiguration(baseURL: key.baseURL).baseURL
        configuration.caFile = key.caFile
        return configuration
    }

    /// Records a client a loop made, for the metrics and for shutdown.
    func made(_ client: UpstreamClient) {
        state.withLock { $0.clients.append(client) }
    }

    var clients: [UpstreamClient] { state.withLock { $0.clients } }

    var connectionsOpened: Int { clients.reduce(0) { $0 + $1.connectionsOpened } }
}
