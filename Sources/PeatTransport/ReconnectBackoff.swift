/// Jittered exponential backoff for reconnecting to a peer ("full jitter").
///
/// The n-th delay is uniformly random in [initial·2ⁿ / 2, initial·2ⁿ], capped at `maximum`, so
/// many nodes that lost the same peer do not redial in lockstep.
public struct ReconnectBackoff: Sendable {
    public var initial: Duration
    public var maximum: Duration
    private var attempt = 0

    public init(initial: Duration = .milliseconds(200), maximum: Duration = .seconds(30)) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The delay before the next attempt; each call doubles the ceiling until `maximum`.
    public mutating func nextDelay<Generator: RandomNumberGenerator>(using generator: inout Generator) -> Duration {
        let ceiling = min(initial * (1 << min(attempt, 30)), maximum)
        attempt += 1
        let ceilingNanoseconds = max(ceiling.nanoseconds, 1)
        let floor = ceilingNanoseconds / 2
        return .nanoseconds(Int64.random(in: floor...ceilingNanoseconds, using: &generator))
    }

    /// The delay before the next attempt, from the system random number generator.
    public mutating func nextDelay() -> Duration {
        var generator = SystemRandomNumberGenerator()
        return nextDelay(using: &generator)
    }

    /// Starts over after a successful connection.
    public mutating func reset() {
        attempt = 0
    }
}

extension Duration {
    /// The duration in whole nanoseconds (saturating).
    package var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product &+ attoseconds / 1_000_000_000
    }
}
