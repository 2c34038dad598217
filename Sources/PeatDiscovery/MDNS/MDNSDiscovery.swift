public import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// DNS-SD over multicast DNS (RFC 6762/6763): announces this node as `<node_id>._peat._tcp.local.`
/// (SRV, TXT `node_id`/`device_id`, A), browses for the others, answers queries, expires records by
/// TTL and says goodbye (TTL 0) on shutdown. Malformed packets are ignored.
public final class MDNSDiscovery: DiscoveryStrategy {
    public struct Configuration: Sendable {
        public var serviceType = "_peat._tcp.local."
        /// This node's ID: its instance name and host label.
        public var nodeID: String
        /// This node's device ID, advertised in TXT.
        public var deviceID: String?
        /// The sync port advertised in SRV.
        public var port: Int
        /// The IPv4 address advertised (A) and used for multicast.
        public var address: String
        /// Record TTL in seconds (also how long a silent peer is kept).
        public var ttl: UInt32 = 120
        /// How often to ask again for peers.
        public var queryInterval: Duration = .seconds(30)
        /// The mDNS port (5353).
        public var mdnsPort = 5353

        public init(nodeID: String, deviceID: String?, port: Int, address: String) {
            self.nodeID = nodeID
            self.deviceID = deviceID
            self.port = port
            self.address = address
        }
    }

    public let name = "mdns"
    public let events: AsyncStream<DiscoveryEvent>
    private let continuation: AsyncStream<DiscoveryEvent>.Continuation
    private let configuration: Configuration
    private let logger: Logger
    private let cache = Mutex(MDNSCache())

    public init(configuration: Configuration, logger: Logger = Logger(label: "peat.discovery", factory: { _ in SwiftLogNoOpLogHandler() })) {
        self.configuration = configuration
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: DiscoveryEvent.self, bufferingPolicy: .bufferingNewest(4096))
    }

    var instanceName: String { "\(configuration.nodeID).\(configuration.serviceType)" }
    var hostName: String { "\(configuration.nodeID).local." }

    /// Our records; `ttl` 0 for the goodbye.
    func announcement(ttl: UInt32) -> DNSMessage {
        var txt = [Array("node_id=\(configuration.nodeID)".utf8)]
        if let deviceID = configuration.deviceID { txt.append(Array("device_id=\(deviceID)".utf8)) }
        var records: [DNSMessage.Record] = [
            .init(name: configuration.serviceType, data: .ptr(instanceName), ttl: ttl),
            .init(name: instanceName, data: .srv(priority: 0, weight: 0, port: UInt16(configuration.port), target: hostName), ttl: ttl, cacheFlush: true),
            .init(name: instanceName, data: .txt(txt), ttl: ttl, cacheFlush: true),
        ]
        if let octets = Self.ipv4Octets(configuration.address) {
            records.append(.init(name: hostName, data: .a(octets), ttl: ttl, cacheFlush: true))
        }
        return DNSMessage(isResponse: true, records: records)
    }

    var query: DNSMessage {
        DNSMessage(isResponse: false, questions: [.init(name: configuration.serviceType, type: DNSMessage.typePTR)])
    }

    public func run() async throws {
        defer { continuation.finish() }
        let group = try SocketAddress(ipAddress: "224.0.0.251", port: configuration.mdnsPort)
        let reusePort = ChannelOptions.Types.SocketOption(
            level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET), name: NIOBSDSocket.Option(rawValue: SO_REUSEPORT))
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(reusePort, value: 1)
            .bind(host: "0.0.0.0", port: configuration.mdnsPort) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(wrappingChannelSynchronously: channel)
                }
            }
        // Send and join on the configured interface, never on whatever the default route is.
        var interfaceAddress = in_addr()
        guard inet_pton(AF_INET, configuration.address, &interfaceAddress) == 1 else {
            throw DiscoveryError(code: .invalidConfiguration, message: "mDNS needs an IPv4 address, got \(configuration.address)")
        }
        let device = try System.enumerateDevices().first { $0.address?.ipAddress == configuration.address }
        if let multicast = channel.channel as? any MulticastChannel {
            try await multicast.joinGroup(group, device: device).get()
        }
        if let options = channel.channel as? any SocketOptionProvider {
            try await options.setIPMulticastIF(interfaceAddress).get()
        }
        logger.info("mDNS discovery started", metadata: ["service": "\(configuration.serviceType)", "address": "\(configuration.address)"])

        // Whatever ends browsing (shutdown, cancellation, an error), peers are told we left.
        do {
            try await browse(channel, group: group)
        } catch {
            await sayGoodbye()
            throw error
        }
        await sayGoodbye()
    }

    private func browse(
        _ channel: NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>, group: SocketAddress
    ) async throws {
        let configuration = configuration
        try await channel.executeThenClose { inbound, outbound in
            func send(_ message: DNSMessage) async throws {
                try await outbound.write(AddressedEnvelope(remoteAddress: group, data: ByteBuffer(bytes: message.encoded())))
            }
            try await send(announcement(ttl: configuration.ttl))
            try await send(query)
            try await withTaskCancellationOrGracefulShutdownHandler {
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask {
                        for try await datagram in inbound {
                            guard let message = try? DNSMessage.decode(Array(datagram.data.readableBytesView)) else { continue }
                            if !message.isResponse {
                                if message.questions.contains(where: {
                                    $0.name.lowercased() == self.configuration.serviceType.lowercased()
                                        || $0.name.lowercased() == self.instanceName.lowercased()
                                }) {
                                    try await send(self.announcement(ttl: self.configuration.ttl))
                                }
                                continue
                            }
                            self.absorb(message)
                        }
                    }
                    tasks.addTask {
                        var sinceQuery = Duration.zero
                        var sinceAnnounce = Duration.zero
                        while true {
                            try await Task.sleep(for: .seconds(1))
                            sinceQuery += .seconds(1)
                            sinceAnnounce += .seconds(1)
                            self.expire()
                            if sinceQuery >= self.configuration.queryInterval {
                                sinceQuery = .zero
                                try await send(self.query)
                            }
                            if sinceAnnounce >= .seconds(Int64(self.configuration.ttl / 2)) {
                                sinceAnnounce = .zero
                                try await send(self.announcement(ttl: self.configuration.ttl))
                            }
                        }
                    }
                    try await tasks.next()
                    tasks.cancelAll()
                }
            } onCancelOrGracefulShutdown: {
                channel.channel.close(promise: nil)
            }
        }
    }

    /// Sends the goodbye (TTL 0) from a fresh socket, after the browsing socket closed.
    public func sayGoodbye() async {
        do {
            let group = try SocketAddress(ipAddress: "224.0.0.251", port: configuration.mdnsPort)
            let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: configuration.address, port: 0).get()
            var interfaceAddress = in_addr()
            _ = inet_pton(AF_INET, configuration.address, &interfaceAddress)
            if let options = channel as? any SocketOptionProvider { try await options.setIPMulticastIF(interfaceAddress).get() }
            try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: group, data: ByteBuffer(bytes: announcement(ttl: 0).encoded())))
            try await channel.close()
        } catch {
            logger.debug("mDNS goodbye not sent", metadata: ["reason": "\(error)"])
        }
    }

    private func absorb(_ message: DNSMessage) {
        let events = cache.withLock { cache in
            cache.absorb(message, serviceType: configuration.serviceType, ownInstance: instanceName, now: .now)
        }
        for event in events { continuation.yield(event) }
    }

    private func expire() {
        let events = cache.withLock { $0.expire(now: .now) }
        for event in events { continuation.yield(event) }
    }

    static func ipv4Octets(_ text: String) -> [UInt8]? {
        var address = in_addr()
        guard inet_pton(AF_INET, text, &address) == 1 else { return nil }
        return withUnsafeBytes(of: address.s_addr) { Array($0) }
    }
}

/// What mDNS responses said, with expiry, turned into peers.
package struct MDNSCache {
    struct Instance {
        var target: String?
        var port: Int?
        var txt: [String: String] = [:]
        var expires: ContinuousClock.Instant
    }

    var instances: [String: Instance] = [:]
    var hosts: [String: (addresses: Set<String>, expires: ContinuousClock.Instant)] = [:]
    var differ = PeerSnapshotDiffer()

    package init() {}

    package mutating func absorb(_ message: DNSMessage, serviceType: String, ownInstance: String, now: ContinuousClock.Instant) -> [DiscoveryEvent] {
        for record in message.records {
            let name = record.name.lowercased()
            let expires = now + .seconds(Int64(record.ttl))
            switch record.data {
            case .ptr(let instance) where name == serviceType.lowercased():
                let key = instance.lowercased()
                guard key != ownInstance.lowercased() else { continue }
                if record.ttl == 0 { instances[key] = nil } else { instances[key, default: Instance(expires: expires)].expires = expires }
            case .srv(_, _, let port, let target) where name.hasSuffix("." + serviceType.lowercased()):
                guard name != ownInstance.lowercased() else { continue }
                if record.ttl == 0 {
                    instances[name] = nil
                    continue
                }
                var instance = instances[name] ?? Instance(expires: expires)
                instance.target = target.lowercased()
                instance.port = Int(port)
                instance.expires = max(instance.expires, expires)
                instances[name] = instance
            case .txt(let strings) where name.hasSuffix("." + serviceType.lowercased()):
                guard name != ownInstance.lowercased(), record.ttl > 0 else { continue }
                var pairs: [String: String] = [:]
                for string in strings {
                    let text = String(decoding: string, as: UTF8.self)
                    if let equals = text.firstIndex(of: "=") { pairs[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
                }
                instances[name, default: Instance(expires: expires)].txt = pairs
            case .a(let octets) where octets.count == 4:
                let address = octets.map(String.init).joined(separator: ".")
                if record.ttl == 0 {
                    hosts[name]?.addresses.remove(address)
                } else {
                    var entry = hosts[name] ?? (addresses: [], expires: expires)
                    if record.cacheFlush { entry.addresses = [] }
                    entry.addresses.insert(address)
                    entry.expires = expires
                    hosts[name] = entry
                }
            default:
                continue
            }
        }
        return differ.update(to: peers())
    }

    package mutating func expire(now: ContinuousClock.Instant) -> [DiscoveryEvent] {
        instances = instances.filter { $0.value.expires > now }
        hosts = hosts.filter { $0.value.expires > now }
        return differ.update(to: peers())
    }

    package func peers() -> [PeerInfo] {
        instances.compactMap { name, instance in
            guard let target = instance.target, let port = instance.port,
                let addresses = hosts[target]?.addresses, !addresses.isEmpty
            else { return nil }
            let nodeID = instance.txt["node_id"] ?? String(name.prefix { $0 != "." })
            var metadata = instance.txt
            metadata["node_id"] = nil
            return PeerInfo(nodeID: nodeID, addresses: addresses.map { PeerEndpoint(host: $0, port: port) }, metadata: metadata, source: "mdns")
        }
    }
}
