import PeatTransport
import Synchronization

/// The copy of the peer registry that `PeatMesh.peers()` reads from any task without waiting for
/// the sync coordinator: republished by the coordinator whenever a peer is found, lost, dialled,
/// connected or disconnected. Round-trip times are read from the live connections.
final class PeerDirectory: Sendable {
    struct Row: Sendable {
        var id: String
        var deviceID: String?
        var state: String
        /// The open session's connection; nil for a discovered peer without one.
        var connection: (any SyncConnection)?
        var addresses: [String]
    }

    private let state = Mutex((rows: [Row](), discovered: 0))

    func publish(_ rows: [Row], discovered: Int) {
        state.withLock { $0 = (rows, discovered) }
    }

    /// Connected peers first (by ID), then discovered peers without a session.
    var peers: [MeshPeer] {
        state.withLock(\.rows).map { row in
            MeshPeer(
                id: row.id, deviceID: row.deviceID, connected: row.connection != nil, state: row.state,
                roundTripTime: row.connection?.roundTripTime, addresses: row.addresses, path: row.connection?.path)
        }
    }

    /// How many peers discovery currently reports.
    var discoveredCount: Int { state.withLock(\.discovered) }
}
