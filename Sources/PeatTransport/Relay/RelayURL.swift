/// Where a relay listens: `https://HOST[:PORT]` (port 443 when omitted, as in any https URL; a
/// relay started with the defaults listens on 3340, so such URLs name it: `https://relay:3340`).
public struct RelayURL: Hashable, Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `https://HOST[:PORT][/]` (an IPv6 host in brackets). The relay protocol always runs
    /// over TLS, so `http://` is refused rather than silently upgraded.
    /// - Throws: `TransportError` with `.connectFailed` describing the problem.
    public init(parsing text: String) throws(TransportError) {
        func bad(_ why: String) -> TransportError {
            TransportError(code: .connectFailed, message: "relay URL \"\(text.prefix(100))\" \(why); expected https://HOST[:PORT]")
        }
        let lowered = text.lowercased()
        guard lowered.hasPrefix("https://") else {
            throw bad(lowered.hasPrefix("http://") ? "is plain http (the relay protocol runs over TLS)" : "is not an https URL")
        }
        var rest = Substring(text.dropFirst("https://".count))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains("/"), !rest.contains("@"), !rest.contains("?"), !rest.contains("#") else {
            throw bad("has a path, user info, query or fragment")
        }
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw bad("has an unclosed [IPv6] host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("has text after the [IPv6] host") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace }) else { throw bad("has no host") }
        var port = 443
        if let portText {
            guard let value = Int(portText), (1...65_535).contains(value), portText.allSatisfy(\.isASCII) else {
                throw bad("has a bad port (1-65535)")
            }
            port = value
        }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "https://[\(host)]:\(port)" : "https://\(host):\(port)" }
}
