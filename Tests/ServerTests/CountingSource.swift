@testable import Server

/// A stream source that counts what it is told.
final class CountingSource: ResponseBodySource {
    var resumed = 0
    var cancelled = 0
    func resume() { resumed += 1 }
    func cancel() { cancelled += 1 }
}
