import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import HummingbirdWSTesting
import Logging
import NIOCore
import NIOPosix
import PeatBroker
import Synchronization
import Testing

/// `Broker.Configuration.token`: who may call what, what a refusal looks like, where the token
/// must never show up, and a token file that rotates.
@Suite(.timeLimit(.minutes(1)))
struct BrokerAccessTests {
    static let token = "s3cr3t-Token_for.tests~1"
    static let bearer: HTTPFields = [.authorization: "Bearer \(token)"]

    static func withBroker(
        token: BrokerToken? = nil, logs: LogRecorder = LogRecorder(),
        _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        var configuration = Broker.Configuration(host: "127.0.0.1", port: 0)
        configuration.token = try token ?? BrokerToken(Self.token)
        let app = Broker(state: FakeBrokerState(), configuration: configuration, logger: logs.logger).makeApplication()
        try await app.test(.router, body)
    }

    static func expectUnauthorized(_ response: TestResponse, _ comment: Comment? = nil) throws {
        #expect(response.status == .unauthorized, comment)
        #expect(response.headers[.wwwAuthenticate] == "Bearer", comment)
        let body = try #require(JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
        #expect(body["status"] as? Int == 401 && body["error"] is String, comment)
    }

    @Test func probesAndMetricsAreOpenAndEverythingElseNeedsTheToken() async throws {
        try await Self.withBroker { client in
            for open in ["/api/v1/health", "/api/v1/ready", "/metrics"] {
                try await client.execute(uri: open, method: .get) { #expect($0.status == .ok, "\(open)") }
            }
            let protected: [(String, HTTPRequest.Method)] = [
                ("/api/v1/node", .get), ("/api/v1/topology", .get), ("/api/v1/peers", .get), ("/api/v1/peers/peat-mesh-1", .get),
                ("/api/v1/documents/beacons", .get), ("/api/v1/documents/beacons/b1", .get), ("/api/v1/documents/beacons/b1", .put),
                ("/api/v1/documents/beacons/b1", .patch), ("/api/v1/documents/beacons/b1", .delete), ("/api/v1/openapi.json", .get),
                ("/api/v1/ws", .get),
                // Unknown paths and wrong methods too: without the token nothing about the API shows.
                ("/nope", .get), ("/api/v1/health", .post), ("/metrics", .delete),
            ]
            for (path, method) in protected {
                let comment: Comment = "\(method) \(path)"
                try await client.execute(uri: path, method: method, body: ByteBuffer(string: "{}")) { try Self.expectUnauthorized($0, comment) }
                for wrong in ["Bearer wrong", "Bearer \(Self.token)x", "Bearer \(Self.token.dropLast())", "Basic \(Self.token)", "Bearer", "\(Self.token)"] {
                    try await client.execute(uri: path, method: method, headers: [.authorization: wrong], body: ByteBuffer(string: "{}")) {
                        try Self.expectUnauthorized($0, comment)
                    }
                }
            }
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .put, headers: Self.bearer, body: ByteBuffer(string: #"{"lat":1}"#)) {
                #expect($0.status == .created)
            }
            try await client.execute(uri: "/api/v1/documents/beacons/b1", method: .get, headers: [.authorization: "bearer  \(Self.token)"]) {
                #expect($0.status == .ok, "the scheme is case-insensitive")
            }
            var twice = Self.bearer
            twice.append(.init(name: .authorization, value: "Bearer wrong"))
            try await client.execute(uri: "/api/v1/node", method: .get, headers: twice) { try Self.expectUnauthorized($0, "two Authorization headers") }
            // With the token, a wrong method is a 405 again.
            try await client.execute(uri: "/api/v1/health", method: .post, headers: Self.bearer) {
                #expect($0.status == .methodNotAllowed && $0.headers[.allow] == "GET")
            }
        }
    }

    @Test func theTokenAppearsInNoResponseMetricOrLogLine() async throws {
        let logs = LogRecorder()
        try await Self.withBroker(logs: logs) { client in
            for header in ["Bearer \(Self.token)x", "Bearer \(Self.token)", "Basic \(Self.token)"] {
                try await client.execute(uri: "/api/v1/documents/beacons/\(Self.token)", method: .get, headers: [.authorization: header]) {
                    #expect(!String(buffer: $0.body).contains(Self.token) || $0.status == .notFound)
                }
            }
            try await client.execute(uri: "/metrics", method: .get) { #expect(!String(buffer: $0.body).contains(Self.token)) }
        }
        #expect(!logs.lines.contains { $0.contains(Self.token) })
        #expect(!"\(try BrokerToken(Self.token))".contains(Self.token))
    }

    @Test func aTokenFileIsReReadSoTheSecretCanRotate() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("peat-token-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("broker-token").path
        try "first-token\n".write(toFile: path, atomically: true, encoding: .utf8)
        let logs = LogRecorder()
        let token = try BrokerToken(file: path, refresh: .zero, logger: logs.logger)
        try await Self.withBroker(token: token) { client in
            let first: HTTPFields = [.authorization: "Bearer first-token"]
            let second: HTTPFields = [.authorization: "Bearer second-token"]
            try await client.execute(uri: "/api/v1/node", method: .get, headers: first) { #expect($0.status == .ok) }
            try "second-token".write(toFile: path, atomically: true, encoding: .utf8)
            try await client.execute(uri: "/api/v1/node", method: .get, headers: first) { try Self.expectUnauthorized($0, "the old token after rotation") }
            try await client.execute(uri: "/api/v1/node", method: .get, headers: second) { #expect($0.status == .ok) }
            // A file that goes missing or empty keeps the token loaded before (and says so once).
            try FileManager.default.removeItem(atPath: path)
            try await client.execute(uri: "/api/v1/node", method: .get, headers: second) { #expect($0.status == .ok) }
            try "".write(toFile: path, atomically: true, encoding: .utf8)
            try await client.execute(uri: "/api/v1/node", method: .get, headers: second) { #expect($0.status == .ok) }
        }
        #expect(logs.lines.filter { $0.contains("Cannot re-read the broker token file") }.count == 1)
        #expect(!logs.lines.contains { $0.contains("second-token") })
    }

    @Test func invalidTokensAreRefusedWithoutShowingThem() {
        for bad in ["", "has space", "tab\tin", "non-ascii-é", String(repeating: "a", count: BrokerToken.maximumLength + 1)] {
            #expect(throws: BrokerToken.Invalid.self) { _ = try BrokerToken(bad) }
            if !bad.isEmpty, bad.count < 100 {
                do { _ = try BrokerToken(bad) } catch { #expect(!error.message.contains(bad)) }
            }
        }
        #expect(throws: BrokerToken.Invalid.self) { _ = try BrokerToken(file: "/nonexistent/peat-token") }
    }

    @Test func theWebSocketUpgradeNeedsTheToken() async throws {
        var configuration = Broker.Configuration(host: "127.0.0.1", port: 0)
        configuration.token = try BrokerToken(Self.token)
        try await Broker(state: FakeBrokerState(), configuration: configuration).makeApplication().test(.live) { client in
            let refused = try? await client.ws("/api/v1/ws") { _, _, _ in Issue.record("upgraded without the token") }
            #expect(refused == nil)
            let upgraded = Mutex(false)
            try await client.ws("/api/v1/ws", configuration: .init(additionalHeaders: Self.bearer)) { inbound, outbound, _ in
                try await outbound.write(.text(#"{"type":"ping"}"#))
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                if case .text(let text)? = try await messages.next(), text.contains("pong") { upgraded.withLock { $0 = true } }
            }
            #expect(upgraded.withLock { $0 })

            // On the wire: the refused upgrade is the same 401 as any route, the accepted one a 101.
            let port = try #require(client.port)
            for (authorization, expected) in [
                ("", "HTTP/1.1 401"), ("Authorization: Bearer wrong\r\n", "HTTP/1.1 401"), ("Authorization: Bearer \(Self.token)\r\n", "HTTP/1.1 101"),
            ] {
                let received = BrokerListenerLimitsTests.ByteCollector()
                let channel = try await BrokerListenerLimitsTests.connect(to: port, collecting: received)
                let request =
                    "GET /api/v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(authorization)\r\n"
                try await channel.writeAndFlush(ByteBuffer(string: request))
                try await Self.eventually { received.text.withLock { $0.contains("\r\n\r\n") } }
                let head = received.text.withLock { $0 }
                #expect(head.hasPrefix(expected), "\(authorization.isEmpty ? "no token" : authorization)")
                if expected.hasSuffix("401") { #expect(head.contains("WWW-Authenticate: Bearer\r\n")) }
                try? await channel.close()
            }
        }
    }

    /// Polls `condition` every 20 ms, at most 10 s.
    static func eventually(_ condition: () -> Bool) async throws {
        for _ in 0..<500 where !condition() { try await Task.sleep(for: .milliseconds(20)) }
        #expect(condition())
    }

    @Test func withoutATokenANonLoopbackBindWarnsOnce() {
        for (host, token, warns) in [("0.0.0.0", nil, true), ("::", nil, true), ("127.0.0.1", nil, false), ("0.0.0.0", Self.token, false)] {
            let logs = LogRecorder()
            var configuration = Broker.Configuration(host: host, port: 0)
            configuration.token = token.flatMap { try? BrokerToken($0) }
            _ = Broker(state: FakeBrokerState(), configuration: configuration, logger: logs.logger).makeApplication()
            #expect(logs.lines.filter { $0.contains("unauthenticated") }.count == (warns ? 1 : 0), "\(host) token: \(token != nil)")
        }
    }
}

/// Collects log lines (message and metadata) in memory.
final class LogRecorder: Sendable {
    private let recorded = Mutex<[String]>([])

    var lines: [String] { recorded.withLock { $0 } }

    var logger: Logger {
        var logger = Logger(label: "peat.broker.test") { _ in Handler(recorder: self) }
        logger.logLevel = .trace
        return logger
    }

    func append(_ line: String) { recorded.withLock { $0.append(line) } }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            recorder.append("\(event.level) \(event.message) \(merged.map { "\($0)=\($1)" }.sorted().joined(separator: " "))")
        }
    }
}

/// The broker's listener limits against a live server (time limits sized for a loaded machine).
@Suite(.timeLimit(.minutes(3)))
struct BrokerListenerLimitsTests {
    /// A raw TCP connection from `source` (the test client's own connection comes from 127.0.0.1).
    static func connect(to port: Int, from source: String = "127.0.0.2", collecting received: ByteCollector? = nil) async throws -> any Channel {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(to: try SocketAddress(ipAddress: source, port: 0))
            .channelInitializer { channel in
                guard let received else { return channel.eventLoop.makeSucceededVoidFuture() }
                return channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(received) }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    final class ByteCollector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let text = Mutex("")
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            text.withLock { $0 += String(buffer: buffer) }
        }
    }

    static func closed(_ channel: any Channel) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await channel.closeFuture.get() }
            group.addTask {
                try await Task.sleep(for: .seconds(30))
                throw CancellationError()
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    @Test func oneAddressGetsAtMostItsShareOfConnections() async throws {
        var configuration = Broker.Configuration(host: "127.0.0.1", port: 0)
        configuration.maximumConnectionsPerAddress = 2
        configuration.firstRequestTimeout = .seconds(120)
        try await Broker(state: FakeBrokerState(), configuration: configuration).makeApplication().test(.live) { client in
            let port = try #require(client.port)
            let held = [try await Self.connect(to: port), try await Self.connect(to: port)]
            let third = try await Self.connect(to: port)
            try await Self.closed(third)
            let stillOpen = held.filter { $0.isActive }.count
            #expect(stillOpen == 2)
            // Another address is not affected.
            try await client.execute(uri: "/api/v1/health", method: .get) { #expect($0.status == .ok) }
            try await held[0].close()
            // A slot is free again: a request from the same address is served.
            var served = false
            for _ in 0..<20 where !served {
                let received = ByteCollector()
                let channel = try await Self.connect(to: port, collecting: received)
                try await channel.writeAndFlush(ByteBuffer(string: "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
                try await Self.closed(channel)
                served = received.text.withLock { $0.hasPrefix("HTTP/1.1 200") }
                if !served { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(served)
            try await held[1].close()
        }
    }

    @Test func aConnectionThatNeverCompletesItsFirstRequestIsClosed() async throws {
        var configuration = Broker.Configuration(host: "127.0.0.1", port: 0)
        configuration.firstRequestTimeout = .milliseconds(300)
        try await Broker(state: FakeBrokerState(), configuration: configuration).makeApplication().test(.live) { client in
            let port = try #require(client.port)
            let silent = try await Self.connect(to: port)
            let trickling = try await Self.connect(to: port)
            // On a loaded machine the deadline may already have closed it: then the write fails.
            try? await trickling.writeAndFlush(ByteBuffer(string: "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n"))
            try await Self.closed(silent)
            try await Self.closed(trickling)
        }
    }

    @Test func methodsAPathDoesNotHaveAre405WithAllow() async throws {
        try await Broker(state: FakeBrokerState(), configuration: .init(host: "127.0.0.1", port: 0)).makeApplication().test(.router) { client in
            for method: HTTPRequest.Method in [.trace, .options, .head, .post] {
                try await client.execute(uri: "/api/v1/documents/beacons/b1", method: method) { response in
                    #expect(response.status == .methodNotAllowed, "\(method)")
                    #expect(response.headers[.allow] == "GET, PUT, PATCH, DELETE", "\(method)")
                }
            }
            try await client.execute(uri: "/api/v1/nothing/here", method: .trace) { #expect($0.status == .notFound) }
        }
    }
}
