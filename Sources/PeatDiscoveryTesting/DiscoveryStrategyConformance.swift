public import PeatDiscovery

/// The behaviour every `DiscoveryStrategy` shares, as checks an embedder runs against their own
/// strategy (`StaticDiscovery`, `HybridDiscovery` and `KubernetesDiscovery` run the same ones):
///
///     @Test(arguments: DiscoveryStrategyConformance.checks)
///     func myStrategyConforms(_ check: DiscoveryStrategyConformance.Check) async throws {
///         try await check.run(on: MyDiscovery(...), expecting: .init(nodeID: "peat-mesh-1", addresses: [...]))
///     }
///
/// Each check runs the strategy it is given (a new one, not yet run) and cancels it at the end.
/// A check throws `DiscoveryStrategyConformance.Failure` naming what did not hold.
public enum DiscoveryStrategyConformance {
    /// The one peer the strategy under test is set up to report.
    public struct ExpectedPeer: Sendable {
        public var nodeID: String
        public var addresses: [PeerEndpoint]

        public init(nodeID: String, addresses: [PeerEndpoint]) {
            self.nodeID = nodeID
            self.addresses = addresses
        }
    }

    public struct Check: Sendable, CustomStringConvertible {
        public let name: String
        private let body: @Sendable (any DiscoveryStrategy, ExpectedPeer) async throws -> Void

        init(_ name: String, _ body: @escaping @Sendable (any DiscoveryStrategy, ExpectedPeer) async throws -> Void) {
            self.name = name
            self.body = body
        }

        /// Runs the check on `strategy`, which is set up to report exactly `expected` (and may
        /// know itself, which it must not report).
        public func run(on strategy: any DiscoveryStrategy, expecting expected: ExpectedPeer) async throws {
            try await body(strategy, expected)
        }

        public var description: String { name }
    }

    /// A behaviour that did not hold.
    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public let line: UInt
        public var description: String { "DiscoveryStrategy conformance: \(message) (line \(line))" }
    }

    static func expect(_ condition: Bool, _ message: @autoclosure () -> String, line: UInt = #line) throws(Failure) {
        guard condition else { throw Failure(message: message(), line: line) }
    }

    /// Runs `strategy` while `body` runs, then cancels it and waits until its `run()` returned.
    static func running(_ strategy: any DiscoveryStrategy, _ body: @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await strategy.run() }
            do {
                try await body()
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
            try? await group.waitForAll()
        }
    }

    /// The next event, or a failure after ten seconds.
    static func nextEvent(_ strategy: any DiscoveryStrategy) async throws -> DiscoveryEvent? {
        let events = strategy.events
        return try await withThrowingTaskGroup(of: DiscoveryEvent?.self) { group in
            group.addTask {
                var iterator = events.makeAsyncIterator()
                return await iterator.next()
            }
            group.addTask {
                try await Task.sleep(for: .seconds(10))
                throw Failure(message: "no event within 10 s", line: #line)
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
    }

    /// Every check, in a stable order.
    public static let checks: [Check] = [
        Check("reports the known peer once with its addresses and source") { strategy, expected in
            try await running(strategy) {
                guard case .peerFound(let peer)? = try await nextEvent(strategy) else {
                    throw Failure(message: "the first event must be peerFound", line: #line)
                }
                try expect(peer.nodeID == expected.nodeID, "the peer's node ID is \(expected.nodeID), not \(peer.nodeID)")
                try expect(peer.addresses == expected.addresses.sorted(), "the peer's addresses are \(expected.addresses), not \(peer.addresses)")
                try expect(peer.source.contains(strategy.name) || strategy.name.contains(peer.source), "the source names the strategy")
            }
        },
        Check("events end when the strategy stops") { strategy, _ in
            try await running(strategy) {
                _ = try await nextEvent(strategy)
            }
            // run() has returned (cancelled): the stream must end, so this loop terminates.
            var remaining = 0
            for await _ in strategy.events {
                remaining += 1
                try expect(remaining < 100, "events keep coming after the strategy stopped")
            }
        },
    ]
}
