import Foundation
import MetricsTestKit
import NIOCore
import PeatIdentity
import PeatTransportTesting
import Testing

@testable import PeatTransport

/// Real transports on loopback for tests: each on its own free port, running in a task group.
enum TransportHarness {
    static let secret = Array("formation-shared-secret-from-k8s-secret".utf8)

    static func transport(
        _ name: String, secret: [UInt8] = secret, port: Int = 0, metrics: TestMetrics = TestMetrics(),
        configure: (inout TLSSyncTransport.Configuration) -> Void = { _ in }
    ) throws -> TLSSyncTransport {
        var configuration = TLSSyncTransport.Configuration(host: "127.0.0.1", port: port)
        configuration.handshakeTimeout = .seconds(3)
        configure(&configuration)
        return try TLSSyncTransport(
            keypair: DeviceKeypair.fromSeed(secret, context: name), formationKey: FormationKey(secret: secret),
            configuration: configuration, metricsFactory: metrics)
    }

    /// How many inbound connections `metrics`' transport refused for `reason`.
    static func rejections(_ metrics: TestMetrics, _ reason: TransportError.Code) -> Int64 {
        metrics.counterTotal(label: "peat_transport_rejections_total", dimensions: [("reason", reason.description), ("direction", "inbound")])
    }

    /// Runs `transports` while `body` runs, then cancels them (which closes every connection).
    static func running<R: Sendable>(_ transports: [TLSSyncTransport], _ body: () async throws -> R) async throws -> R {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for transport in transports {
                group.addTask { try await transport.run() }
            }
            for transport in transports { _ = try await transport.listeningAddress() }
            do {
                let result = try await body()
                group.cancelAll()
                return result
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }

    /// The next inbound connection, or an error after `timeout`.
    static func nextInbound(_ transport: TLSSyncTransport, timeout: Duration = .seconds(10)) async throws -> any SyncConnection {
        try await withTimeout(timeout) {
            var iterator = transport.inboundConnections.makeAsyncIterator()
            guard let connection = await iterator.next() else { throw TransportError(code: .transportClosed, message: "no more connections") }
            return connection
        }
    }

    typealias TimedOut = SyncTransportConformance.TimedOut

    static func withTimeout<R: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> R) async throws -> R {
        try await SyncTransportConformance.withTimeout(timeout, body)
    }

    /// Polls `condition` until it holds (for state that settles without an event), at most `timeout`.
    static func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TimedOut() }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Writes raw bytes under the frame encoder (inside TLS), as a buggy or hostile peer would.
    static func writeRaw(_ bytes: [UInt8], on connection: TLSSyncConnection) async throws {
        let channel = connection.asyncChannel.channel
        try await channel.eventLoop.submit {
            let context = try channel.pipeline.syncOperations.context(handlerType: MessageToByteHandler<FrameEncoder>.self)
            context.writeAndFlush(NIOAny(ByteBuffer(bytes: bytes)), promise: nil)
        }.get()
    }
}
