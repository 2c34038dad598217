import PeatDiscovery
import PeatIdentity
import PeatTransport

extension PeatMesh {
    /// The peer connector: turns discovery events into dial loops, one per discovered peer, and closes
    /// the session of a peer discovery lost.
    func connect(_ events: AsyncStream<DiscoveryEvent>) async {
        await withDiscardingTaskGroup { dialers in
            for await event in events {
                switch event {
                case .peerFound(let info), .peerUpdated(let info):
                    guard info.nodeID != nodeID else { continue }
                    let isNew = peerTable.discover(info, expected: expectedDevice(of: info))
                    let addresses = info.addresses.map(\.description).joined(separator: ", ")
                    logger.info("\(isNew ? "Peer discovered" : "Peer updated") peer=\(info.nodeID) addresses=[\(addresses)] source=\(info.source)")
                    if isNew {
                        dialers.addTask { await self.dial(info.nodeID) }
                    }
                case .peerLost(let lostID):
                    guard lostID != nodeID else { continue }
                    logger.info("Peer lost peer=\(lostID)")
                    if let connection = peerTable.lose(lostID) {
                        await connection.close()
                    }
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

    /// Keeps one session open to a discovered peer until discovery loses it: dials its addresses in
    /// order, runs the session, and redials with jittered exponential backoff. It does not dial while a
    /// session to the peer's device is open in either direction, so two nodes that both dial settle on
    /// one connection.
    func dial(_ peerID: String) async {
        var backoff = configuration.reconnectBackoff
        while !Task.isCancelled, let peer = peerTable.discovered(peerID) {
            if peerTable.isConnected(peerID) {
                try? await Task.sleep(for: .milliseconds(200))
                continue
            }
            peerTable.setDialState(peerID, "connecting")
            var reached = false
            for endpoint in peer.info.addresses where !Task.isCancelled {
                do {
                    let connection = try await transport.connect(
                        to: PeerAddress(host: endpoint.host, port: endpoint.port), expectedPeer: peer.expected)
                    reached = true
                    backoff.reset()
                    peerTable.setDialState(peerID, "connected", known: connection.peer.deviceID)
                    await runSession(connection, addresses: peer.info.addresses.map(\.description))
                    break
                } catch let error as TransportError where error.code == .duplicateConnection {
                    // Already connected to this device (the peer dialled too): that session syncs.
                    reached = true
                    peerTable.setDialState(peerID, "connected", known: error.peer?.deviceID)
                    try? await Task.sleep(for: .milliseconds(200))
                    break
                } catch {
                    continue
                }
            }
            guard !reached, peerTable.discovered(peerID) != nil else { continue }
            peerTable.setDialState(peerID, "backoff")
            try? await Task.sleep(for: backoff.nextDelay())
        }
    }
}
