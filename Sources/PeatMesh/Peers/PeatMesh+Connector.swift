import PeatDiscovery
import PeatIdentity
import PeatTransport
import Synchronization

extension PeatMesh {
    /// The peer connector: turns discovery events into dial loops, one per discovered peer, and ends
    /// the session of a peer discovery lost at once.
    func connect(_ events: AsyncStream<DiscoveryEvent>) async {
        await withDiscardingTaskGroup { dialers in
            for await event in events {
                switch event {
                case .peerFound(let info), .peerUpdated(let info):
                    guard info.nodeID != nodeID else { continue }
                    let ticket = await coordinator.discovered(info, expected: expectedDevice(of: info))
                    let addresses = info.addresses.map(\.description).joined(separator: ", ")
                    logger.info("\(ticket == nil ? "Peer updated" : "Peer discovered") peer=\(info.nodeID) addresses=[\(addresses)] source=\(info.source)")
                    if let ticket {
                        dialers.addTask { await self.dial(info.nodeID, ticket) }
                    }
                case .peerLost(let lostID):
                    guard lostID != nodeID else { continue }
                    logger.info("Peer lost peer=\(lostID)")
                    // Closed without waiting for the peer: a hung process must not keep its session.
                    if let connection = await coordinator.lost(lostID) { await connection.abort() }
                }
            }
        }
    }

    /// The device a discovered peer must present: announced by mDNS (`device_id`), or derived from its
    /// node ID when its source names peers by identity context.
    func expectedDevice(of info: PeerInfo) -> DeviceID? {
        if let announced = info.metadata["device_id"], let device = try? DeviceID(hex: announced) { return device }
        let sources = info.source.split(separator: "+").map(String.init)
        guard sources.contains(where: configuration.identityCheckedSources.contains) else { return nil }
        return deriveDevice(info.nodeID)
    }

    /// Keeps one session open to a discovered peer until discovery loses it (`maintainConnection`):
    /// dials its current addresses in order, runs the session, and redials with jittered exponential
    /// backoff. While a session with the peer's device is open in either direction it waits for that
    /// session to end instead of dialling, so two nodes that both dial settle on one connection.
    func dial(_ peerID: String, _ ticket: PeerRegistry.DialTicket) async {
        let coordinator = coordinator
        var wake = ticket.wake.makeAsyncIterator()
        await transport.maintainConnection(
            backoff: configuration.reconnectBackoff, clock: clock,
            nextTarget: {
                while true {
                    switch await coordinator.dialDecision(peerID, generation: ticket.generation) {
                    case .stop:
                        return nil
                    case .wait:
                        guard await wake.next() != nil else { return nil }
                    case .dial(let addresses, let expected, let relays):
                        // The peer's relay first, then this node's own.
                        let all = relays + transport.relays.filter { !relays.contains($0) }
                        // Through a relay the peer must be a known device: the checked one, else the
                        // one its node ID derives (as for pods, whose node ID is their identity context).
                        return ReconnectTarget(
                            addresses: addresses, expectedPeer: expected, relays: all, relayDevice: expected ?? self.deriveDevice(peerID))
                    }
                }
            },
            observe: { outcome in
                switch outcome {
                case .failed: await coordinator.dialFailed(peerID, generation: ticket.generation)
                case .alreadyConnected(let peer, _): await coordinator.dialed(peerID, generation: ticket.generation, device: peer?.deviceID)
                case .sessionEnded: break
                }
            },
            session: { connection in
                await coordinator.dialed(peerID, generation: ticket.generation, device: connection.peer.deviceID)
                guard connection.path != .direct, let addresses = await coordinator.directAddresses(peerID, generation: ticket.generation),
                    !addresses.isEmpty
                else {
                    await self.runSession(connection, addresses: [])
                    return
                }
                await self.runRelayed(connection, directAddresses: addresses)
            })
    }

    /// Runs a relayed session while trying the peer's direct addresses with `directProbeBackoff`:
    /// the first direct connection replaces the relayed one (the transport closes it), and its
    /// session runs here until it ends.
    func runRelayed(_ relayed: any SyncConnection, directAddresses: [PeerAddress]) async {
        let movedToDirect = DirectMove()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.runSession(relayed, addresses: []) }
            group.addTask {
                var backoff = self.configuration.directProbeBackoff
                while !Task.isCancelled {
                    do {
                        try await self.clock.sleep(for: backoff.nextDelay())
                    } catch {
                        return
                    }
                    for address in directAddresses where !Task.isCancelled {
                        guard let direct = try? await self.transport.connect(to: address, expectedPeer: relayed.peer.deviceID) else { continue }
                        movedToDirect.happened.withLock { $0 = true }
                        self.logger.info("Peer moved to a direct path peer=\(relayed.peer.deviceID.hex) address=\(address)")
                        await self.runSession(direct, addresses: [])
                        await direct.close()
                        return
                    }
                }
            }
            // The first to end is the relayed session (moved to direct, or the relay went away) or,
            // when the probe is cancelled from outside, the probe.
            await group.next()
            if !movedToDirect.happened.withLock({ $0 }) { group.cancelAll() }
            await group.waitForAll()
        }
    }
}

/// Whether a relayed session's probe found a direct path.
private final class DirectMove: Sendable {
    let happened = Mutex(false)
}
