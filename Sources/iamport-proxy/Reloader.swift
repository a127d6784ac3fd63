#if canImport(Glibc)
import Glibc
#endif
import Accounts
import ArgumentParser
import EventLoops
import FoundationEssentials
import Iamport
import Logging
import Proxy
import Server
import Synchronization
import Upstream

/// Reads the configuration and secret files again and applies them
/// (SPEC.md, "Reload without a restart"): a valid new configuration serves
/// the requests that arrive after it; an invalid one is refused, logged and
/// counted, and the old one stays.
final class Reloader: Sendable {
    let options: CommonOptions
    let env: [String: String]
    let service: ProxyService
    let logger: Logger
    let initial: GlobalSettings
    /// One reload at a time (a signal and a file change can coincide).
    private let running = Mutex<Void>(())
    /// Told which files the configuration reads after each reload.
    private let watcher = Mutex<ConfigWatcher?>(nil)

    func watch(with watcher: ConfigWatcher) {
        self.watcher.withLock { $0 = watcher }
    }

    init(options: CommonOptions, env: [String: String], service: ProxyService, logger: Logger, initial: GlobalSettings) {
        self.options = options
        self.env = env
        self.service = service
        self.logger = logger
        self.initial = initial
    }

    func reload(trigger: String) {
        running.withLock { _ in
            let accounts: [AccountConfiguration]
            let global: GlobalSettings
            do {
                let resolved = try Settings.load(options, env: env)
                // A new file may name other secret files: watch those from now on.
                let paths = resolved.watchedPaths(options, env: env)
                watcher.withLock { $0?.replacePaths(paths) }
                switch resolved {
                case .single(let settings):
                    accounts = [try settings.account()]
                    global = settings.global
                case .accounts(let settings):
                    accounts = settings.accounts
                    global = settings.global
                }
            } catch {
                refused("\(error)", trigger: trigger)
                return
            }
            switch service.reload(accounts) {
            case .failure(let refusal):
                refused(refusal.description, trigger: trigger)
            case .success(let summary):
                service.metrics.configReload(succeeded: true)
                var metadata: Logger.Metadata = ["trigger": "\(trigger)"]
                if !summary.added.isEmpty { metadata["added"] = "\(summary.added.joined(separator: ","))" }
                if !summary.removed.isEmpty { metadata["removed"] = "\(summary.removed.joined(separator: ","))" }
                if !summary.newCredentials.isEmpty {
                    metadata["new_credentials"] = "\(summary.newCredentials.joined(separator: ","))"
                }
                if !summary.changed.isEmpty { metadata["changed"] = "\(summary.changed.joined(separator: ","))" }
                logger.notice(summary.isEmpty ? "configuration reloaded: no change" : "configuration reloaded", metadata: metadata)
                let restartOnly = global.restartOnlyDifferences(from: initial)
                if !restartOnly.isEmpty {
                    logger.warning("these settings change only with a restart; still serving with the old values", metadata: [
                        "settings": "\(restartOnly.joined(separator: ","))"
                    ])
                }
            }
        }
    }

    private func refused(_ why: String, trigger: String) {
        service.metrics.configReload(succeeded: false)
        logger.error("configuration reload refused: \(why); the previous configuration stays in force", metadata: [
            "trigger": "\(trigger)"
        ])
    }
}
