public import PeatIdentity

/// Where `maintainConnection` dials next: addresses in order, and the device the peer must have.
public struct ReconnectTarget: Sendable, Equatable {
    public var addresses: [PeerAddress]
    public var expectedPeer: DeviceID?
    /// Relays to try, in order, when no address answered.
    public var relays: [RelayURL]
    /// The device to ask the relays for (a relay forwards by device ID; the relayed handshake
    /// requires it): `expectedPeer` unless given. Without either, relays are not tried.
    public var relayDevice: DeviceID?

    public init(addresses: [PeerAddress], expectedPeer: DeviceID?, relays: [RelayURL] = [], relayDevice: DeviceID? = nil) {
        self.addresses = addresses
        self.expectedPeer = expectedPeer
        self.relays = relays
        self.relayDevice = relayDevice
    }

    /// The routes to try in order: every address, then (for a known device) every relay.
    var routes: [Route] {
        addresses.map(Route.direct) + ((expectedPeer ?? relayDevice).map { device in relays.map { Route.relay($0, device) } } ?? [])
    }

    enum Route {
        case direct(PeerAddress)
        case relay(RelayURL, DeviceID)
    }
}

/// How one round of `maintainConnection` ended.
public enum ReconnectOutcome: Sendable {
    /// No address accepted a connection; `lastError` is the last address's failure.
    case failed(lastError: TransportError?, retryIn: Duration)
    /// The transport already holds a connection to the peer's device (for example the peer dialled
    /// this node at the same time); `peer` is that device when the transport said.
    case alreadyConnected(peer: PeerIdentity?, retryIn: Duration)
    /// A session ran on a connection and ended.
    case sessionEnded(retryIn: Duration)
}

extension SyncTransport {
    /// Keeps a connection to one peer until `nextTarget` returns nil or the calling task is cancelled.
    ///
    /// Each round asks `nextTarget` where to dial (it may wait as long as it likes, for example while
    /// another connection to the peer is open), tries the addresses in order, then its relays, and hands the first
    /// authenticated connection to `session`. When the session returns, or no address answered, it
    /// reports the round to `observe` and waits a jittered, exponentially growing delay on `clock`
    /// before the next round (reset after every successful connection).
    /// - Parameters:
    ///   - backoff: The delays between rounds.
    ///   - clock: The clock to sleep on (tests drive it).
    ///   - nextTarget: Where to dial next; nil ends the loop.
    ///   - observe: Told how each round ended, before the delay.
    ///   - session: Uses one connection; the connection is closed when it returns.
    public func maintainConnection<C: Clock<Duration>>(
        backoff: ReconnectBackoff = ReconnectBackoff(),
        clock: C = ContinuousClock(),
        nextTarget: () async -> ReconnectTarget?,
        observe: (ReconnectOutcome) async -> Void = { _ in },
        session: (any SyncConnection) async -> Void
    ) async {
        var backoff = backoff
        while !Task.isCancelled, let target = await nextTarget() {
            var outcome: ReconnectOutcome?
            var lastError: TransportError?
            for route in target.routes where !Task.isCancelled {
                do {
                    let connection =
                        switch route {
                        case .direct(let address): try await connect(to: address, expectedPeer: target.expectedPeer)
                        case .relay(let relay, let device): try await connect(through: relay, to: device)
                        }
                    backoff.reset()
                    await session(connection)
                    await connection.close()
                    outcome = .sessionEnded(retryIn: backoff.nextDelay())
                    break
                } catch let error as TransportError where error.code == .duplicateConnection {
                    backoff.reset()
                    outcome = .alreadyConnected(peer: error.peer, retryIn: backoff.nextDelay())
                    break
                } catch {
                    lastError = error as? TransportError
                }
            }
            let ended = outcome ?? .failed(lastError: lastError, retryIn: backoff.nextDelay())
            await observe(ended)
            do {
                try await clock.sleep(for: ended.retryIn)
            } catch {
                return  // cancelled
            }
        }
    }

    /// Keeps a connection to the peer at `address` until the calling task is cancelled: connects,
    /// hands each authenticated connection to `session`, and after the session returns or the attempt
    /// fails waits a jittered, exponentially growing delay before dialling again.
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
        await maintainConnection(
            backoff: backoff, clock: clock, nextTarget: { ReconnectTarget(addresses: [address], expectedPeer: expectedPeer) },
            session: session)
    }
}

extension ReconnectOutcome {
    /// The delay before the next round.
    public var retryIn: Duration {
        switch self {
        case .failed(_, let delay), .alreadyConnected(_, let delay), .sessionEnded(let delay): delay
        }
    }
}
