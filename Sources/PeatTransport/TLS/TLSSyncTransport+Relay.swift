import Logging
import NIOConcurrencyHelpers
import NIOCore
public import PeatIdentity

extension TLSSyncTransport {
    /// The relays this node holds an admitted listen connection to right now.
    public var listeningRelays: Set<RelayURL> {
        state.withLockedValue(\.listeningRelays)
    }

    public var relays: [RelayURL] { configuration.relays }

    /// Opens an authenticated connection to `device` through the relay at `relay`: the relay pairs
    /// this node with the device's listen connection, and the two run the same TLS 1.3 and formation
    /// handshake as on a direct connection, inside the relayed stream.
    /// - Throws: `TransportError` (`.relayRefused` when the device is not on that relay, a limit was
    ///   reached or the relay did not prove the access key; `.connectFailed`; the handshake's errors).
    public func connect(through relay: RelayURL, to device: DeviceID) async throws -> any SyncConnection {
        try await connectTLS(through: relay, to: device)
    }

    /// Like `connect(through:to:)`, returning the concrete connection type.
    public func connectTLS(through relay: RelayURL, to device: DeviceID) async throws -> TLSSyncConnection {
        guard !state.withLockedValue(\.closed) else {
            throw TransportError(code: .transportClosed, message: "the transport shut down")
        }
        let started: PendingConnection
        do {
            started = try await openSession(through: relay, intent: .connect(target: device, token: randomToken()), role: .initiator, peer: device)
        } catch {
            report(rejection: error, address: relay.description, role: .initiator)
            throw error
        }
        return try await authenticate(started, role: .initiator)
    }

    /// Opens a relay connection with a session `intent` and, once the relay paired it, installs the
    /// sync pipeline on it for `role`, expecting `peer`.
    private func openSession(
        through relay: RelayURL, intent: RelayIntent, role: MembershipRole, peer: DeviceID
    ) async throws(TransportError) -> PendingConnection {
        let client = try relayClient()
        let pending = NIOLockedValueBox<PendingConnection?>(nil)
        do {
            _ = try await client.open(
                relay, intent: intent,
                sessionStarted: { channel in
                    let connection = try self.configure(channel: channel, role: role, expectedPeer: peer, path: .relay(relay))
                    pending.withLockedValue { $0 = connection }
                }, onChannel: { self.track($0) })
        } catch {
            throw error as? TransportError ?? TransportError(code: .connectFailed, message: "relay \(relay) failed", cause: error)
        }
        guard let started = pending.withLockedValue({ $0 }) else {
            throw TransportError(code: .connectFailed, message: "the relayed session did not start")
        }
        return started
    }

    /// Keeps a listen connection to `relay` until the task is cancelled, redialling with backoff.
    func listen(on relay: RelayURL) async {
        var backoff = configuration.relayBackoff
        var lastFailure: TransportError.Code?
        while !Task.isCancelled {
            do {
                let client = try relayClient()
                let channel = try await client.open(
                    relay, intent: .listen,
                    incoming: { [weak self] device, token in
                        guard let self else { return }
                        Task { await self.accept(from: relay, device: device, token: token) }
                    }, onChannel: { self.track($0) })
                backoff.reset()
                lastFailure = nil
                state.withLockedValue { _ = $0.listeningRelays.insert(relay) }
                logger.info("Relay connected", metadata: ["relay": "\(relay)"])
                try? await channel.closeFuture.get()
                state.withLockedValue { _ = $0.listeningRelays.remove(relay) }
                if !Task.isCancelled { logger.info("Relay disconnected", metadata: ["relay": "\(relay)"]) }
            } catch {
                let failure = error as? TransportError ?? TransportError(code: .connectFailed, message: "relay \(relay) failed", cause: error)
                // A warning when the reason changes (not yet listening, then a relay of another
                // formation), debug while it stays the same: a relay down for an hour is one line.
                var metadata: Logger.Metadata = ["relay": "\(relay)", "reason": "\(failure.code)", "detail": "\(failure.message)"]
                if let cause = failure.cause { metadata["cause"] = "\(cause)" }
                logger.log(level: failure.code == lastFailure ? .debug : .warning, "Relay unreachable", metadata: metadata)
                lastFailure = failure.code
            }
            do {
                try await Task.sleep(for: backoff.nextDelay())
            } catch {
                return
            }
        }
    }

    /// Joins the session a peer announced on a listen connection, as the responder.
    private func accept(from relay: RelayURL, device: DeviceID, token: [UInt8]) async {
        guard !state.withLockedValue(\.closed) else { return }
        let started: PendingConnection
        do {
            started = try await openSession(through: relay, intent: .accept(token: token), role: .responder, peer: device)
        } catch {
            report(rejection: error, address: relay.description, role: .responder)
            return
        }
        // A failed handshake is reported by `authenticate` itself.
        guard let connection = try? await authenticate(started, role: .responder) else { return }
        if case .dropped = inboundContinuation.yield(connection) {
            connection.close(reason: TransportError(code: .connectionClosed, message: "too many unclaimed inbound connections"))
        }
    }

    private func relayClient() throws(TransportError) -> RelayClient {
        guard let accessKey = configuration.relayAccessKey else {
            throw TransportError(code: .connectFailed, message: "no relay access key configured")
        }
        return RelayClient(
            keypair: keypair, accessKey: accessKey, group: group, connectTimeout: configuration.connectTimeout,
            handshakeTimeout: configuration.handshakeTimeout)
    }

    private func randomToken() -> [UInt8] {
        Array(FormationChallenge.random().nonce.prefix(RelayIntent.tokenByteCount))
    }
}
