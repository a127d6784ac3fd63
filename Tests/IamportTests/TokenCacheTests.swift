import Dispatch
import EventLoops
import Testing
@testable import Iamport

@Suite struct TokenCacheTests {
    @Test func oneFetchServesTwoHundredConcurrentWaiters() async throws {
        let clock = ManualClock()
        let source = ScriptedSource()
        let cache = TokenCache(source: source, clock: clock)
        let results = Collector<Result<Token, TokenError>>()
        DispatchQueue.concurrentPerform(iterations: 200) { _ in
            cache.withToken { results.add($0) }
        }
        #expect(source.calls == 1)
        #expect(results.count == 0)
        source.complete(.success(issued("tok-a")))
        #expect(results.count == 200)
        #expect(results.all.allSatisfy { (try? $0.get().value) == Secret("tok-a") })
        #expect(source.calls == 1)
    }

    @Test func startFetchesOnceInTheBackground() {
        let source = ScriptedSource()
        let cache = TokenCache(source: source, clock: ManualClock())
        cache.start()
        cache.start()
        #expect(source.calls == 1)
        #expect(cache.validToken() == nil)
        source.complete(.success(issued("t")))
        #expect(cache.validToken()?.value == Secret("t"))
    }

    @Test func refreshAheadInsideTheLastMinuteKeepsServingTheCurrentToken() {
        let clock = ManualClock()
        let source = ScriptedSource()
        let events = Collector<TokenEvent>()
        let cache = TokenCache(source: source, clock: clock) { events.add($0) }
        cache.start()
        source.complete(.success(issued("t1", now: 5000, lifetime: 1800)))
        let first = try! #require(cache.validToken())

        clock.advance(by: 1800 - 61)
        #expect(source.calls == 1, "no renewal before the last minute")
        clock.advance(by: 2)  // 59 s left: the timer starts the renewal
        #expect(source.calls == 2)
        // While the renewal runs, requests keep using the current token.
        #expect(cache.validToken()?.value == Secret("t1"))
        // iamport extends the same token by 5 minutes.
        source.complete(.success(IssuedToken(accessToken: Secret("t1"), serverNow: 5000 + 1741, expiredAt: 5000 + 1800 + 300)))
        let renewed = try! #require(cache.validToken())
        #expect(renewed.generation == first.generation, "same value, same generation")
        #expect(renewed.expiresAt > first.expiresAt + .seconds(290))
        #expect(events.all.contains(.fetched(reason: .refresh, lifetime: 359, newValue: false)))
    }

    @Test func refreshThresholdIsAFifthOfAShortLifetime() {
        let clock = ManualClock()
        let source = ScriptedSource()
        let cache = TokenCache(source: source, clock: clock)
        cache.start()
        source.complete(.success(issued("short", lifetime: 100)))
        clock.advance(by: 79)  // 21 s left > 20 s
        #expect(source.calls == 1)
        clock.advance(by: 2)  // 19 s left < 100 / 5
        #expect(source.calls == 2)
    }

    @Test(arguments: [-3600, 0, 3600])
    func expiryIsJudgedByTheServerClock(skew: Int64) {
        // The server's clock is an hour off the machine's: only expired_at - now counts.
        let clock = ManualClock()
        let source = ScriptedSource()
        let cache = TokenCache(source: source, clock: clock)
        cache.start()
        source.complete(.success(issued("skewed", now: 1_700_000_000 + skew, lifetime: 1800)))
        let token = try! #require(cache.validToken())
        #expect(token.expiresAt == clock.now() + .seconds(1800))
        clock.advance(by: 1700)
        #expect(cache.validToken() != nil)
        #expect(source.calls == 1)
    }

    @Test func aRenewalThatDoesNotMoveTheExpiryIsRetriedCloserToItNeverInATightLoop() {
        let clock = ManualClock()
        // The API never extends: every answer has the same expiry.
        let source = ScriptedSource { _ in .success(IssuedToken(accessToken: Secret("same"), serverNow: 0, expiredAt: 1800)) }
        let events = Collector<TokenEvent>()
        let cache = TokenCache(source: source, clock: clock) { events.add($0) }
        cache.start()
        #expect(source.calls == 1)
        clock.advance(by: 1741)  // 59 s left
        #expect(source.calls == 2)
        #expect(events.all.contains { if case .notExtended = $0 { return true } else { return false } })
        // Over the remaining minute, retries halve the distance, at most once a second.
        clock.advance(by: 57)
        #expect(source.calls > 2 && source.calls < 12, "calls: \(source.calls)")
        #expect(cache.validToken()?.value == Secret("same"))
    }

    @Test func aDyingTokenIsNotFetchedAgainAndAgain() {
        let clock = ManualClock()
        let source = ScriptedSource()
        let cache = TokenCache(source: source, clock: clock)
        let results = Collector<Result<Token, TokenError>>()
        cache.withToken { results.add($0) }
        // The API hands back a token with one second left: the waiter stays
        // parked, later callers join it, and nothing is fetched until it died.
        source.complete(.success(IssuedToken(accessToken: Secret("dying"), serverNow: 10, expiredAt: 11)))
        #expect(results.count == 0)
        cache.withToken { results.add($0) }
        #expect(source.calls == 1)
        clock.advance(by: 0.5)
        #expect(source.calls == 1)
        clock.advance(by: 0.6)
        #expect(source.calls == 2)
        source.complete(.success(issued("fresh")))
        #expect(results.count == 2)
        #expect(results.all.allSatisfy { (try? $0.get().value) == Secret("fresh") })
    }

    @Test func unauthorizedDropsOnlyTheCachedTokenAndRenewsOnceForMany() {
        let clock = ManualClock()
        let source = ScriptedSource()
        let events = Collector<TokenEvent>()
        let cache = TokenCache(source: source, clock: clock) { events.add($0) }
        cache.start()
        source.complete(.success(issued("old")))
        let old = try! #require(cache.validToken())
        let results = Collector<UnauthorizedOutcome>()
        DispatchQueue.concurrentPerform(iterations: 50) { _ in
            cache.renewAfterUnauthorized(used: old) { results.add($0) }
        }
        #expect(source.calls == 2, "50 refusals, one renewal")
        source.complete(.success(issued("new")))
        #expect(results.count == 50)
        #expect(results.all.allSatisfy { $0.replayToken == Secret("new") })
        let fresh = try! #require(cache.validToken())
        #expect(fresh.value == Secret("new"))
        #expect(fresh.generation == old.generation + 1)
        // A late 401 for the old token does not drop the new one.
        cache.renewAfterUnauthorized(used: old) { results.add($0) }
        #expect(source.calls == 2)
        #expect(results.all.last?.replayToken == Secret("new"))
        #expect(events.all.filter { $0 == .droppedAfterUnauthorized }.count == 1)
    }

    @Test func aRenewalReturningTheSameValueConfirmsTheTokenAndPassesTheRefusalThrough() {
        let clock = ManualClock()
        let source = ScriptedSource()
        let events = Collector<TokenEvent>()
        let cache = TokenCache(source: source, clock: clock) { events.add($0) }
        cache.start()
        source.complete(.success(issued("held", now: 1_700_000_000)))
        let held = try! #require(cache.validToken())

        // The API refused a request but still holds the token valid.
        let results = Collector<UnauthorizedOutcome>()
        cache.renewAfterUnauthorized(used: held) { results.add($0) }
        #expect(source.calls == 2)
        source.complete(.success(issued("held", now: 1_700_000_005)))  // same expiry: not extended
        #expect(results.all.map(\.isPassThrough) == [true], "no replay with the same token")
        let kept = try! #require(cache.validToken(), "the token stays in use")
        #expect(kept.value == held.value && kept.generation == held.generation)
        #expect(kept.expiresAt == held.expiresAt)
        #expect(events.all.contains(.confirmedAfterUnauthorized(window: .seconds(10))))

        // For 10 s, more 401s for it pass through at once, without a fetch.
        for _ in 0..<100 {
            cache.renewAfterUnauthorized(used: held) { results.add($0) }
            clock.advance(by: 0.099)
        }
        #expect(source.calls == 2)
        #expect(results.count == 101 && results.all.allSatisfy(\.isPassThrough))
        #expect(cache.validToken()?.value == held.value)

        // The first 401 after the window renews again.
        clock.advance(by: 0.2)
        cache.renewAfterUnauthorized(used: held) { results.add($0) }
        #expect(source.calls == 3)
        #expect(results.count == 101, "waits for the renewal")
        source.complete(.success(issued("held", now: 1_700_000_015)))
        #expect(results.count == 102 && results.all.last?.isPassThrough == true)
        #expect(events.all.filter { $0 == .droppedAfterUnauthorized }.count == 2)
    }

    @Test func aTokenNeverConfirmedGetsItsRenewalAndReplayAtOnce() {
        let clock = ManualClock()
        let source = ScriptedSource()
        let cache = TokenCache(source: source, clock: clock)
        cache.start()
        source.complete(.success(issued("revoked")))
        let revoked = try! #require(cache.validToken())
        let results = Collector<UnauthorizedOutcome>()
        cache.renewAfterUnauthorized(used: revoked) { results.add($0) }
        #expect(source.calls == 2)
        source.complete(.success(issued("fresh")))
        #expect(results.all.map(\.replayToken) == [Secret("fresh")])
    }

    @Test func aConfirmationBelongsToOneTokenValue() {
        let clock = ManualClock()
        let source = ScriptedSource()
        let cache = TokenCache(source: source, clock: clock)
        cache.start()
        source.complete(.success(issued("first")))
        let first = try! #require(cache.validToken())
        let results = Collector<UnauthorizedOutcome>()
        cache.renewAfterUnauthorized(used: first) { results.add($0) }
        source.complete(.success(issued("first")))
        #expect(results.all.last?.isPassThrough == true)
        // Within the window the API revokes it: the next 401 passes through (the
        // window's price), and the first after the window renews and replays.
        cache.renewAfterUnauthorized(used: first) { results.add($0) }
        #expect(source.calls == 2 && results.all.last?.isPassThrough == true)
        clock.advance(by: 10.5)
        cache.renewAfterUnauthorized(used: first) { results.add($0) }
        #expect(source.calls == 3)
        source.complete(.success(issued("second")))
        #expect(results.all.last?.replayToken == Secret("second"))
        // The new value was never confirmed: a 401 for it renews at once.
        let second = try! #require(cache.validToken())
        cache.renewAfterUnauthorized(used: second) { results.add($0) }
        #expect(source.calls == 4)
        source.complete(.success(issued("third")))
        #expect(results.all.last?.replayToken == Secret("third"))
    }

    @Test func aFailedRenewalAfterUnauthorizedIsReportedAsFailed() {
        let clock = ManualClock()
        let source = ScriptedSource()
        let cache = TokenCache(source: source, clock: clock)
        cache.start()
        source.complete(.success(issued("t")))
        let token = try! #require(cache.validToken())
        let results = Collector<UnauthorizedOutcome>()
        cache.renewAfterUnauthorized(used: token) { results.add($0) }
        source.complete(.failure(.unavailable("malformed getToken answer: empty access_token")))
        guard case .failed(let error)? = results.all.last else {
            Issue.record("\(results.all)")
            return
        }
        #expect(error.message.contains("malformed getToken answer"))
    }

    @Test func anOverflowingLifetimeFromAnySourceDoesNotTrapTheCache() {
        // The decoder refuses these; a source that does not must not crash the cache.
        let clock = ManualClock()
        let source = ScriptedSource()
        let cache = TokenCache(source: source, clock: clock)
        cache.start()
        source.complete(.success(IssuedToken(accessToken: Secret("t"), serverNow: -1, expiredAt: .max)))
        let status = cache.status()
        #expect(status.valid)
        clock.advance(by: 3600)
        cache.start()
        source.complete(.success(IssuedToken(accessToken: Secret("u"), serverNow: .max, expiredAt: .min)))
        #expect(cache.validToken() != nil || cache.status().lastError != nil)
    }

    @Test func failingEndpointBacksOffAndRequestsFailFastMeanwhile() {
        let clock = ManualClock()
        let source = ScriptedSource { _ in .failure(.unavailable("getToken refused (HTTP 401): invalid key")) }
        let events = Collector<TokenEvent>()
        let cache = TokenCache(source: source, clock: clock) { events.add($0) }
        cache.start()
        #expect(source.calls == 1)
        // Requests during the backoff fail at once with the API's message and cause no fetch.
        let results = Collector<Result<Token, TokenError>>()
        for _ in 0..<100 { cache.withToken { results.add($0) } }
        #expect(source.calls == 1)
        #expect(results.all.allSatisfy {
            if case .failure(.unavailable(let m)) = $0 { return m.contains("invalid key") } else { return false }
        })
        // Retries come by themselves at 1, 2, 4, 8, 16, 30, 30 s.
        var expectedCalls = 1
        for delay in [1.0, 2, 4, 8, 16, 30, 30] {
            clock.advance(by: delay - 0.01)
            #expect(source.calls == expectedCalls, "not before \(delay) s")
            clock.advance(by: 0.02)
            expectedCalls += 1
            #expect(source.calls == expectedCalls, "after \(delay) s")
            clock.advance(by: -0.01 + 0.0)
        }
        let retries = events.all.compactMap { event -> Nanoseconds? in
            if case .fetchFailed(_, _, let retryIn) = event { return retryIn }
            return nil
        }
        #expect(Array(retries.prefix(8)) == [1, 2, 4, 8, 16, 30, 30, 30].map { Nanoseconds.seconds($0) })
        // Recovery.
        source.setRule { _ in .success(issued("ok")) }
        clock.advance(by: 31)
        #expect(cache.validToken()?.value == Secret("ok"))
        #expect(cache.status().valid)
        #expect(cache.status().lastError == nil)
    }

    @Test func statusExplainsWhyThereIsNoToken() {
        let source = ScriptedSource { _ in .failure(.unavailable("getToken refused (HTTP 401): bad secret")) }
        let cache = TokenCache(source: source, clock: ManualClock())
        cache.start()
        let status = cache.status()
        #expect(!status.valid)
        #expect(status.lastError?.contains("bad secret") == true)
    }

    @Test func secretsAndTokensNeverPrint() {
        let token = issued("very-secret-token-value")
        #expect(!"\(token)".contains("very-secret"))
        #expect(!String(reflecting: token).contains("very-secret"))
        #expect(!"\(Secret("s3cr3t"))".contains("s3cr3t"))
        var dumped = ""
        dump(Secret("s3cr3t"), to: &dumped)
        #expect(!dumped.contains("s3cr3t"))
    }

    @Test func constantTimeComparison() {
        #expect(Secret("abc").constantTimeEquals(Array("abc".utf8)))
        #expect(!Secret("abc").constantTimeEquals(Array("abd".utf8)))
        #expect(!Secret("abc").constantTimeEquals(Array("ab".utf8)))
        #expect(!Secret("abc").constantTimeEquals(Array("abcd".utf8)))
        #expect(!Secret("abc").constantTimeEquals([UInt8]()))
    }
}
