import PeatIdentity
import PeatTransportTesting
import ServiceLifecycle
import Testing

@testable import PeatTransport

/// Both transports run the seam's conformance suite (`PeatTransportTesting`, the one embedders run).
@Suite(.timeLimit(.minutes(1)))
struct SyncTransportConformanceTests {
    /// TLS transports on loopback, each on a free port.
    struct TLSSubject: SyncTransportConformanceSubject {
        let maximumPayloadSize = 4096
        let unreachableAddress = PeerAddress(host: "127.0.0.1", port: 1)

        func makeTransport(name: String, secret: [UInt8]) throws -> any SyncTransport & Service {
            try TransportHarness.transport(name, secret: secret) { $0.maximumPayloadSize = 4096 }
        }

        func address(of transport: any SyncTransport & Service) async throws -> PeerAddress {
            try await (transport as! TLSSyncTransport).listeningAddress()
        }
    }

    /// In-memory transports on one network.
    final class InMemorySubject: SyncTransportConformanceSubject {
        let maximumPayloadSize = 4096
        let unreachableAddress = PeerAddress(host: "10.99.0.250", port: 11204)
        let network = InMemoryNetwork()

        func makeTransport(name: String, secret: [UInt8]) throws -> any SyncTransport & Service {
            let host = name == "peat-mesh-0" ? "10.99.0.1" : "10.99.0.2"
            return InMemorySyncTransport(
                keypair: DeviceKeypair.fromSeed(secret, context: name), formationKey: FormationKey(secret: secret),
                address: PeerAddress(host: host, port: 11204), network: network, maximumPayloadSize: 4096)
        }

        func address(of transport: any SyncTransport & Service) async throws -> PeerAddress {
            let address = (transport as! InMemorySyncTransport).address
            // In-memory listeners register when run() starts.
            try await TransportHarness.eventually { self.network.listener(at: address) != nil }
            return address
        }
    }

    @Test(arguments: SyncTransportConformance.checks)
    func tlsTransportConforms(_ check: SyncTransportConformance.Check) async throws {
        try await check.run(on: TLSSubject())
    }

    @Test(arguments: SyncTransportConformance.checks)
    func inMemoryTransportConforms(_ check: SyncTransportConformance.Check) async throws {
        try await check.run(on: InMemorySubject())
    }
}
