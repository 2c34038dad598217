import PeatTransport

/// A session's send budget (`PeatMesh.Configuration.peerRateLimit`): a token bucket on the session's
/// clock. The writer waits until the bucket is not in debt, then chooses the next frame — so the
/// frame that leaves is the one of the highest priority waiting at that moment — and spends its
/// size (plus a TLS record's and a frame header's overhead), which may put the bucket in debt by up
/// to one frame.
struct SendBudget: Equatable {
    /// TLS 1.3 record (5-byte header, content type, 16-byte tag) and transport frame header.
    static let frameOverhead = 22 + 5

    /// Bytes per second.
    let rate: Int
    /// The most the bucket holds: what may leave at once after a quiet spell.
    let burst: Int
    private var tokens: Double
    private var last: Duration

    /// A bucket for `rate` bytes per second, full at `now`; it holds a quarter second's worth (at
    /// least one part, so any frame can leave).
    init(rate: Int, now: Duration = .zero) {
        precondition(rate > 0)
        self.rate = rate
        burst = max(rate / 4, SyncSession.StateMachine.partSize + Self.frameOverhead)
        tokens = Double(burst)
        last = now
    }

    /// How long to wait at `now` before the next frame may be chosen; zero when it may leave now.
    mutating func delay(at now: Duration) -> Duration {
        refill(now)
        guard tokens < 0 else { return .zero }
        return .nanoseconds(Int64((-tokens / Double(rate) * 1e9).rounded(.up)))
    }

    /// A frame of `bytes` left at `now`.
    mutating func spend(_ bytes: Int, at now: Duration) {
        refill(now)
        tokens -= Double(bytes + Self.frameOverhead)
    }

    private mutating func refill(_ now: Duration) {
        guard now > last else { return }
        let elapsed = Double((now - last).nanoseconds) / 1e9
        tokens = min(Double(burst), tokens + elapsed * Double(rate))
        last = now
    }
}
