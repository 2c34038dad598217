import PeatIdentity
import Testing

@testable import PeatTransport

struct SimultaneousDialPolicyTests {
    static let low = try! DeviceID(hex: "00000000000000000000000000000001")
    static let high = try! DeviceID(hex: "ff000000000000000000000000000000")

    @Test func bothSidesKeepTheConnectionTheLowerDeviceInitiated() {
        let policy = SimultaneousDialPolicy(window: .seconds(5))
        // The low device's view: existing = its inbound (high initiated), new = its outbound.
        let lowKeepsNew = policy.newReplacesExisting(
            existingRole: .responder, existingAge: .milliseconds(10), newRole: .initiator, local: Self.low, peer: Self.high)
        // The high device's view of the same two connections, in the other arrival order.
        let highKeepsNew = policy.newReplacesExisting(
            existingRole: .responder, existingAge: .milliseconds(10), newRole: .initiator, local: Self.high, peer: Self.low)
        #expect(lowKeepsNew)  // low keeps the connection it initiated
        #expect(!highKeepsNew)  // high keeps its inbound connection: the one low initiated
    }

    @Test func aLateConnectionReplacesAStaleOne() {
        let policy = SimultaneousDialPolicy(window: .seconds(5))
        #expect(
            policy.newReplacesExisting(
                existingRole: .initiator, existingAge: .seconds(60), newRole: .responder, local: Self.low, peer: Self.high))
    }

    @Test func equallyPreferredConnectionsKeepTheNewest() {
        let policy = SimultaneousDialPolicy(window: .seconds(5))
        #expect(
            policy.newReplacesExisting(
                existingRole: .initiator, existingAge: .seconds(1), newRole: .initiator, local: Self.low, peer: Self.high))
    }
}

struct ReconnectBackoffTests {
    @Test func delaysGrowExponentiallyWithJitterUpToTheMaximum() {
        var backoff = ReconnectBackoff(initial: .milliseconds(100), maximum: .seconds(2))
        var generator = SystemRandomNumberGenerator()
        var ceilings: [Duration] = [
            .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600), .seconds(2), .seconds(2),
        ]
        for ceiling in ceilings {
            let delay = backoff.nextDelay(using: &generator)
            #expect(delay <= ceiling)
            #expect(delay >= ceiling / 2)
        }
        backoff.reset()
        #expect(backoff.nextDelay(using: &generator) <= .milliseconds(100))
        ceilings.removeAll()
    }

    @Test func jitterSpreadsDelays() {
        var delays = Set<Duration>()
        for _ in 0..<20 {
            var backoff = ReconnectBackoff(initial: .seconds(1), maximum: .seconds(30))
            delays.insert(backoff.nextDelay())
        }
        #expect(delays.count > 10)
    }
}

/// The in-memory transport keeps one connection per pair of devices, decided as over TLS.
struct InMemoryConnectionPolicyTests {
    @Test func bothDiallingKeepsTheConnectionTheLowerDeviceInitiated() async throws {
        let network = InMemoryNetwork()
        let secret = TransportHarness.secret
        func transport(_ name: String, _ host: String) -> InMemorySyncTransport {
            InMemorySyncTransport(
                keypair: DeviceKeypair.fromSeed(secret, context: name), formationKey: FormationKey(secret: secret),
                address: PeerAddress(host: host, port: 11204), network: network)
        }
        let a = transport("peat-mesh-0", "192.0.2.1")
        let b = transport("peat-mesh-1", "192.0.2.2")
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await a.run() }
            group.addTask { try await b.run() }
            defer { group.cancelAll() }
            try await TransportHarness.eventually { network.listener(at: a.address) != nil && network.listener(at: b.address) != nil }
            let lowerIsA = a.localIdentity.deviceID < b.localIdentity.deviceID
            let (first, second) = lowerIsA ? (a, b) : (b, a)
            // The lower device dials first; the other's dial within the window loses to it.
            _ = try await first.connect(to: second.address, expectedPeer: nil)
            await #expect {
                _ = try await second.connect(to: first.address, expectedPeer: nil)
            } throws: { ($0 as? TransportError)?.code == .duplicateConnection }
            #expect(a.openConnections.count == 1 && b.openConnections.count == 1)
            #expect(first.openConnections.first?.role == .initiator && second.openConnections.first?.role == .responder)
            // A later dial by the same device replaces its connection on both sides.
            _ = try await first.connect(to: second.address, expectedPeer: nil)
            #expect(a.openConnections.count == 1 && b.openConnections.count == 1)
        }
    }
}
