import Logging
import NIOConcurrencyHelpers
import NIOCore
public import PeatIdentity

extension TLSSyncTransport {
    /// The relays this node holds an admitted listen connection to right now.
    public var listeningRelays: Set<RelayURL> {
        state.withLockedValue(\.listeningRelays)
    }

    /// Opens an authenticated connection to `device` through the relay at `relay`: the relay pairs
    /// this node with the device's listen connection, and the two run the same TLS 1.3 and formation
    /// handshake as on a direct connection, inside the relayed stream.
    /// - Throws: `TransportError` (`.relayRefused` when the device is not on that relay, a limit was
    ///   reached or the relay did not prove the access key; `.connectFailed`; the handshake's errors).
    public var relays: [RelayURL] { configuration.relays }

    public func connect(through relay: RelayURL, to device: DeviceID) async throws -> any SyncConnection {
        try await connectTLS(through: relay, to: device)
    }

    /// Like `connect(through:to:)`, returning the concrete connection type.
    public func connectTLS(through relay: RelayURL, to device: DeviceID) async throws -> TLSSyncConnection {
        guard !state.withLockedValue(\.closed) else {
            throw TransportError(code: .transportClosed, message: "the transport shut down")
        }
        let client = try relayClient()
        let token = randomToken()
        let pending = NIOLockedValueBox<PendingConnection?>(nil)
        do {
            _ = try await client.open(
                relay, intent: .connect(target: device, token: token),
                sessionStarted: { channel in
                    let connection = try self.configure(channel: channel, role: .initiator, expectedPeer: device, path: .relay(relay))
                    pending.withLockedValue { $0 = connection }
                }, onChannel: { self.track($0) })
        } catch let error as TransportError {
            report(rejection: error, address: relay.description, role: .initiator)
            throw error
        }
        guard let started = pending.withLockedValue({ $0 }) else {
            throw TransportError(code: .connectFailed, message: "the relayed session did not start")
        }
        return try await authenticate(started, role: .initiator)
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
        guard !state.withLockedValue(\.closed), let client = try? relayClient() else { return }
        let pending = NIOLockedValueBox<PendingConnection?>(nil)
        do {
            _ = try await client.open(
                relay, intent: .accept(token: token),
                sessionStarted: { channel in
                    let connection = try self.configure(channel: channel, role: .responder, expectedPeer: device, path: .relay(relay))
                    pending.withLockedValue { $0 = connection }
                }, onChannel: { self.track($0) })
            guard let started = pending.withLockedValue({ $0 }) else { return }
            let connection = try await authenticate(started, role: .responder)
            if case .dropped = inboundContinuation.yield(connection) {
                connection.close(reason: TransportError(code: .connectionClosed, message: "too many unclaimed inbound connections"))
            }
        } catch let error as TransportError {
            report(rejection: error, address: relay.description, role: .responder)
        } catch {}
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
