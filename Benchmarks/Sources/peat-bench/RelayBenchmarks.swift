import Foundation
import PeatIdentity
import PeatTransport

/// The relay: 1 KiB frame throughput between two `TLSSyncTransport`s through an in-process
/// `RelayServer` against the same two transports connected directly, in the same run (best of
/// three alternating runs each); and `relay-clients`, which holds idle listen connections to a
/// relay process so `mesh_bench.py relay` can read that process's memory per client.
enum RelayBenchmarks {
    static let secret = TransportBenchmarks.secret

    static func run() async throws {
        let size = 1024
        let count = 50_000
        var relayed = Double.infinity
        var direct = Double.infinity
        for _ in 0..<3 {
            relayed = min(relayed, try await throughput(size: size, count: count, throughRelay: true))
            direct = min(direct, try await throughput(size: size, count: count, throughRelay: false))
        }
        let megabytes = Double(size * count) / 1_048_576
        emit(
            #"RESULT {"workload":"relay_throughput_1024B","frames":\#(count),"ours_frames_per_s":\#(Int(Double(count) / relayed)),"ours_mb_per_s":\#(Int(megabytes / relayed)),"baseline":"the same transports connected directly (TLS 1.3)","baseline_frames_per_s":\#(Int(Double(count) / direct)),"baseline_mb_per_s":\#(Int(megabytes / direct)),"ratio":\#(((direct / relayed) * 1000).rounded() / 1000),"goal_ratio":0.5}"#
        )
    }

    static func transport(_ name: String, relay: RelayURL?) throws -> TLSSyncTransport {
        var configuration = TLSSyncTransport.Configuration(host: "127.0.0.1", port: 0)
        configuration.maximumPayloadSize = 1 << 20
        configuration.handshakeTimeout = .seconds(30)
        if let relay {
            configuration.relays = [relay]
            configuration.relayAccessKey = RelayAccessKey(secret: try FormationSecret(rawBytes: secret))
        }
        return try TLSSyncTransport(
            keypair: DeviceKeypair.fromSeed(secret, context: name), formationKey: FormationKey(secret: secret), configuration: configuration)
    }

    /// Seconds to send `count` frames one way and get a one-byte acknowledgement.
    static func throughput(size: Int, count: Int, throughRelay: Bool) async throws -> Double {
        var relayConfiguration = RelayServer.Configuration(
            host: "127.0.0.1", port: 0, accessKey: RelayAccessKey(secret: try FormationSecret(rawBytes: secret)))
        // The forwarding itself is measured, not the default per-device policy (8 MiB/s).
        relayConfiguration.clientBytesPerSecond = 1 << 34
        relayConfiguration.totalBytesPerSecond = 1 << 34
        let relay = try RelayServer(configuration: relayConfiguration)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await relay.run() }
            let url = RelayURL(host: "127.0.0.1", port: try await relay.listeningAddress().port)
            let a = try transport("relay-bench-a", relay: throughRelay ? url : nil)
            let b = try transport("relay-bench-b", relay: throughRelay ? url : nil)
            group.addTask { try await a.run() }
            group.addTask { try await b.run() }
            group.addTask { try await TransportBenchmarks.acknowledgeFirstInbound(on: b, after: count) }
            let connection: any SyncConnection
            if throughRelay {
                while !b.listeningRelays.contains(url) { try await Task.sleep(for: .milliseconds(10)) }
                connection = try await a.connect(through: url, to: b.localIdentity.deviceID)
            } else {
                connection = try await a.connect(to: try await b.listeningAddress(), expectedPeer: nil)
            }
            let payload = [UInt8](repeating: 0x5a, count: size)
            let elapsed = try await ContinuousClock().measure {
                try await connection.withFrames { frames, writer in
                    for _ in 0..<count { try await writer.send(payload) }
                    var iterator = frames.makeAsyncIterator()
                    _ = try await iterator.next()
                }
            }
            group.cancelAll()
            return TransportBenchmarks.seconds(elapsed)
        }
    }

    /// `peat-bench relay-clients <https-url> <count> <seconds>`: `count` devices of the formation in
    /// `PEAT_FORMATION_SECRET` each keep a listen connection to the relay for `seconds`; prints
    /// `READY <n>` once `n` are admitted.
    static func holdClients(_ arguments: [String]) async throws {
        guard arguments.count == 3, let url = try? RelayURL(parsing: arguments[0]), let count = Int(arguments[1]),
            let seconds = Double(arguments[2]), let text = ProcessInfo.processInfo.environment["PEAT_FORMATION_SECRET"]
        else {
            print("usage: PEAT_FORMATION_SECRET=... peat-bench relay-clients <https-url> <count> <seconds>")
            return
        }
        let formation = try FormationSecret(base64: text)
        let transports = try (0..<count).map { i in
            var configuration = TLSSyncTransport.Configuration(host: "127.0.0.1", port: 0)
            configuration.relays = [url]
            configuration.relayAccessKey = RelayAccessKey(secret: formation)
            configuration.handshakeTimeout = .seconds(60)
            return try TLSSyncTransport(
                keypair: formation.deviceKeypair(context: "relay-client-\(i)"), formationKey: formation.formationKey(),
                configuration: configuration)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for transport in transports { group.addTask { try await transport.run() } }
            let deadline = ContinuousClock.now + .seconds(120)
            while transports.filter({ !$0.listeningRelays.isEmpty }).count < count, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            emit("READY \(transports.filter { !$0.listeningRelays.isEmpty }.count)")
            try await Task.sleep(for: .seconds(seconds))
            group.cancelAll()
        }
    }
}
