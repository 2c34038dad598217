import PeatDiscovery
import PeatIdentity
import PeatTransport

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
                    case .dial(let addresses, let expected):
                        return ReconnectTarget(addresses: addresses, expectedPeer: expected)
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
                await self.runSession(connection, addresses: [])
            })
    }
}
