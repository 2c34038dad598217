import NIOCore

/// A token bucket in bytes: `rate` bytes per second on average, bursts of up to `burst`.
///
/// Bytes are spent after they were read (the relay cannot know a read's size in advance), so the
/// balance may go negative; the reader then pauses until it is back at zero. No clock inside:
/// callers pass the time (tests pass any they like).
struct ByteBucket: Sendable {
    let rate: Int
    let burst: Int
    private var tokens: Double
    private var last: NIODeadline

    init(rate: Int, burst: Int? = nil, now: NIODeadline) {
        self.rate = max(rate, 1)
        self.burst = max(burst ?? rate, 1)
        tokens = Double(self.burst)
        last = now
    }

    /// Spends `bytes`; returns how long the reader must pause (nil: not at all).
    mutating func spend(_ bytes: Int, now: NIODeadline) -> TimeAmount? {
        refill(now: now)
        tokens -= Double(bytes)
        return delay()
    }

    /// How long until the balance is back at zero (nil: it is not negative).
    mutating func pause(now: NIODeadline) -> TimeAmount? {
        refill(now: now)
        return delay()
    }

    private func delay() -> TimeAmount? {
        guard tokens < 0 else { return nil }
        return .nanoseconds(Int64((-tokens / Double(rate) * 1e9).rounded(.up)))
    }

    private mutating func refill(now: NIODeadline) {
        let elapsed = Double((now - last).nanoseconds) / 1e9
        if elapsed > 0 {
            tokens = min(Double(burst), tokens + elapsed * Double(rate))
            last = now
        }
    }
}
