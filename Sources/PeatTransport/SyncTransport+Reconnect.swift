public import PeatIdentity

extension SyncTransport {
    /// Keeps a connection to one peer until the calling task is cancelled.
    ///
    /// Connects, hands each authenticated connection to `session`, and when the session returns
    /// or the attempt fails, waits a jittered, exponentially growing delay before dialling again
    /// (reset after every successful connection).
    /// - Parameters:
    ///   - address: Where the peer listens.
    ///   - expectedPeer: The device ID the peer must have, when known.
    ///   - backoff: The delays between attempts.
    ///   - clock: The clock to sleep on (tests can drive it).
    ///   - session: Uses one connection; the connection is closed when it returns.
    public func maintainConnection<C: Clock<Duration>>(
        to address: PeerAddress,
        expectedPeer: DeviceID?,
        backoff: ReconnectBackoff = ReconnectBackoff(),
        clock: C = ContinuousClock(),
        session: (any SyncConnection) async -> Void
    ) async {
        var backoff = backoff
        while !Task.isCancelled {
            if let connection = try? await connect(to: address, expectedPeer: expectedPeer) {
                backoff.reset()
                await session(connection)
                await connection.close()
            }
            do {
                try await clock.sleep(for: backoff.nextDelay())
            } catch {
                return  // cancelled
            }
        }
    }
}
