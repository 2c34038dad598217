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
