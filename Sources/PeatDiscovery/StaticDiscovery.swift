import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Peers from a fixed list (`PEAT_STATIC_PEERS`), with DNS names re-resolved periodically.
///
/// A name that stops resolving keeps its last known addresses (a DNS blip never loses a peer);
/// one that never resolved is reported by name, for the transport to resolve when dialling.
public final class StaticDiscovery: DiscoveryStrategy {
    /// One configured peer: `[node_id@]host:port`.
    public struct Peer: Hashable, Sendable {
        public var nodeID: String?
        public var host: String
        public var port: Int

        public init(nodeID: String? = nil, host: String, port: Int) {
            self.nodeID = nodeID
            self.host = host
            self.port = port
        }

        /// A peer with no reachable address (`node_id@relay`), reached only through relays.
        public static func relayOnly(nodeID: String) -> Peer {
            Peer(nodeID: nodeID, host: "", port: 0)
        }

        /// Whether the peer has no address (`node_id@relay`).
        public var isRelayOnly: Bool { host.isEmpty }

        /// The node ID it is reported under: the given one, else `host:port`.
        public var reportedNodeID: String { nodeID ?? PeerEndpoint(host: host, port: port).description }
    }

    /// Resolves a host name to IP addresses; nil when resolution failed.
    public typealias Resolver = @Sendable (String) async -> [String]?

    public let name = "static"
    public let events: AsyncStream<DiscoveryEvent>
    private let continuation: AsyncStream<DiscoveryEvent>.Continuation
    private let peers: [Peer]
    private let resolveInterval: Duration
    private let resolver: Resolver

    /// - Parameters:
    ///   - peers: The configured peers.
    ///   - resolveInterval: How often DNS names are resolved again.
    ///   - resolver: Name resolution (the system resolver unless a test injects one).
    public init(peers: [Peer], resolveInterval: Duration = .seconds(30), resolver: @escaping Resolver = StaticDiscovery.systemResolve) {
        self.peers = peers
        self.resolveInterval = resolveInterval
        self.resolver = resolver
        (events, continuation) = AsyncStream.makeStream(of: DiscoveryEvent.self, bufferingPolicy: .bufferingNewest(4096))
    }

    /// Parses `PEAT_STATIC_PEERS`: comma-separated `[node_id@]host:port` (IPv6 as `[addr]:port`)
    /// or `node_id@relay` (a peer with no reachable address, dialled only through relays);
    /// entries are trimmed and empty ones skipped.
    /// - Throws: `DiscoveryError(.invalidConfiguration)` naming the bad entry.
    public static func parsePeers(_ text: String) throws(DiscoveryError) -> [Peer] {
        try text.split(separator: ",").map { $0.trimmingCharacters() }.filter { !$0.isEmpty }.map { entry throws(DiscoveryError) in
            try parsePeer(entry)
        }
    }

    static func parsePeer(_ entry: String) throws(DiscoveryError) -> Peer {
        func bad(_ why: String) -> DiscoveryError {
            DiscoveryError(code: .invalidConfiguration, message: "entry \"\(entry.prefix(64))\" \(why); expected [node_id@]host:port or node_id@relay")
        }
        var nodeID: String?
        var address = Substring(entry)
        if let at = entry.firstIndex(of: "@") {
            let id = String(entry[..<at])
            guard !id.isEmpty else { throw bad("has an empty node ID") }
            nodeID = id
            address = entry[entry.index(after: at)...]
            if address.lowercased() == "relay" { return .relayOnly(nodeID: id) }
        }
        let host: Substring
        let portText: Substring
        if address.hasPrefix("[") {
            guard let close = address.firstIndex(of: "]"), address[address.index(after: close)...].hasPrefix(":") else {
                throw bad("has a bad [IPv6]:port")
            }
            host = address[address.index(after: address.startIndex)..<close]
            portText = address[address.index(close, offsetBy: 2)...]
            guard isIPv6(String(host)) else { throw bad("has a bad IPv6 address") }
        } else {
            guard let colon = address.lastIndex(of: ":") else { throw bad("has no port") }
            host = address[..<colon]
            portText = address[address.index(after: colon)...]
            guard !host.contains(":") else { throw bad("has an IPv6 address without [brackets]") }
        }
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace || $0 == "/" }) else { throw bad("has no usable host") }
        guard !portText.isEmpty, portText.utf8.count <= 5, portText.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
            let port = Int(portText), (1...65_535).contains(port)
        else { throw bad("has a bad port (1-65535)") }
        return Peer(nodeID: nodeID, host: String(host), port: port)
    }

    public func run() async throws {
        var differ = PeerSnapshotDiffer()
        var known: [String: [String]] = [:]  // host -> last resolved addresses
        defer { continuation.finish() }
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            var snapshot: [PeerInfo] = []
            for peer in peers {
                let addresses: [String]
                if peer.isRelayOnly {
                    addresses = []
                } else if Self.isIPv4(peer.host) || Self.isIPv6(peer.host) {
                    addresses = [peer.host]
                } else if let resolved = await resolver(peer.host), !resolved.isEmpty {
                    addresses = resolved
                    known[peer.host] = resolved
                } else {
                    addresses = known[peer.host] ?? [peer.host]
                }
                let endpoints = Array(Set(addresses)).map { PeerEndpoint(host: $0, port: peer.port) }
                snapshot.append(PeerInfo(nodeID: peer.reportedNodeID, addresses: endpoints, source: name))
            }
            // Two entries for one node ID: addresses are unioned.
            var merged: [String: PeerInfo] = [:]
            for peer in snapshot {
                if var existing = merged[peer.nodeID] {
                    existing.addresses = Array(Set(existing.addresses + peer.addresses)).sorted()
                    merged[peer.nodeID] = existing
                } else {
                    merged[peer.nodeID] = peer
                }
            }
            for event in differ.update(to: Array(merged.values)) { continuation.yield(event) }
            do {
                try await gracefulShutdownAwareSleep(resolveInterval)
            } catch {
                return
            }
        }
    }

    /// Sleeps, returning early (by throwing) on cancellation or graceful shutdown.
    private func gracefulShutdownAwareSleep(_ duration: Duration) async throws {
        try await cancelWhenGracefulShutdown {
            try await Task.sleep(for: duration)
        }
    }

    /// The system resolver (getaddrinfo): the IPv4 and IPv6 addresses of `host`.
    public static let systemResolve: Resolver = { host in
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(first) }
        var addresses: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(info.pointee.ai_addr, info.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                addresses.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            cursor = info.pointee.ai_next
        }
        return Array(Set(addresses)).sorted()
    }

    /// Whether `text` is an IPv4 literal.
    package static func isIPv4(_ text: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, text, &address) == 1
    }

    /// Whether `text` is an IPv6 literal.
    package static func isIPv6(_ text: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1
    }
}

extension StringProtocol {
    func trimmingCharacters() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else { return "" }
        return String(self[first...last])
    }
}
