public import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bearer token the broker's protected routes require (`Broker.Configuration.token`).
///
/// Either fixed, or read from a file and re-read at most every `refresh` — so a mounted Kubernetes
/// Secret can be rotated without a restart (the kubelet swaps the file; the new token is accepted
/// and the old one refused from the next re-read on). A re-read that fails (the file missing,
/// empty or not a valid token) keeps the token already loaded and logs why, without the token.
///
/// The token is compared in constant time and appears nowhere: not in a description, a log line,
/// an error message or a metric.
public final class BrokerToken: Sendable, CustomStringConvertible {
    /// A token that cannot be used; the message names the problem, never the token.
    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The longest token accepted.
    public static let maximumLength = 4096

    private enum Source {
        case fixed
        case file(path: String, refresh: Duration)
    }

    private struct Loaded {
        var token: [UInt8]
        var readAt: ContinuousClock.Instant
        var failureLogged: Bool
    }

    private let source: Source
    private let loaded: Mutex<Loaded>
    private let logger: Logger

    /// A fixed token.
    /// - Throws: `Invalid` if it is empty, too long, or has characters outside printable ASCII.
    public init(_ token: String) throws(Invalid) {
        self.source = .fixed
        self.loaded = Mutex(Loaded(token: try Self.validated(Array(token.utf8), from: "the token"), readAt: .now, failureLogged: false))
        self.logger = Logger(label: "peat.broker", factory: { _ in SwiftLogNoOpLogHandler() })
    }

    /// A token read from `path` (surrounding white space trimmed), re-read at most every `refresh`.
    /// - Throws: `Invalid` if the file cannot be read or does not hold a valid token.
    public init(file path: String, refresh: Duration = .seconds(1), logger: Logger = Logger(label: "peat.broker")) throws(Invalid) {
        self.source = .file(path: path, refresh: refresh)
        self.loaded = Mutex(Loaded(token: try Self.read(path), readAt: .now, failureLogged: false))
        self.logger = logger
    }

    public var description: String {
        switch source {
        case .fixed: "BrokerToken(fixed, redacted)"
        case .file(let path, _): "BrokerToken(file: \(path), redacted)"
        }
    }

    /// Whether `presented` is the current token (constant time in the token's contents).
    public func accepts(_ presented: some Collection<UInt8>) -> Bool {
        Self.constantTimeEquals(current(), presented)
    }

    /// The token now, re-read from its file when `refresh` has passed.
    private func current() -> [UInt8] {
        guard case .file(let path, let refresh) = source else { return loaded.withLock { $0.token } }
        let now = ContinuousClock.now
        let (token, due) = loaded.withLock { loaded -> ([UInt8], Bool) in
            guard loaded.readAt.duration(to: now) >= refresh else { return (loaded.token, false) }
            // Claimed by this request; others keep using the loaded token meanwhile.
            loaded.readAt = now
            return (loaded.token, true)
        }
        guard due else { return token }
        do {
            let fresh = try Self.read(path)
            loaded.withLock {
                $0.token = fresh
                $0.failureLogged = false
            }
            return fresh
        } catch {
            let first = loaded.withLock { loaded in
                defer { loaded.failureLogged = true }
                return !loaded.failureLogged
            }
            if first {
                logger.warning(
                    "Cannot re-read the broker token file; keeping the token loaded before", metadata: ["path": "\(path)", "reason": "\(error.message)"])
            }
            return token
        }
    }

    private static func read(_ path: String) throws(Invalid) -> [UInt8] {
        guard let file = fopen(path, "rb") else {
            throw Invalid(message: "cannot read the token file \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1024)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            bytes += chunk[0..<count]
            if count < chunk.count { break }
            guard bytes.count <= maximumLength + 64 else { throw Invalid(message: "the token file \(path) is larger than a token") }
        }
        return try validated(trimmed(bytes), from: "the token file \(path)")
    }

    private static func trimmed(_ bytes: [UInt8]) -> [UInt8] {
        let space: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0a || $0 == 0x0d }
        guard let first = bytes.firstIndex(where: { !space($0) }), let last = bytes.lastIndex(where: { !space($0) }) else { return [] }
        return Array(bytes[first...last])
    }

    /// Printable ASCII without spaces (what fits in `Authorization: Bearer <token>`), 1-4096 bytes.
    private static func validated(_ token: [UInt8], from origin: String) throws(Invalid) -> [UInt8] {
        guard !token.isEmpty else { throw Invalid(message: "\(origin) is empty") }
        guard token.count <= maximumLength else { throw Invalid(message: "\(origin) is longer than \(maximumLength) bytes") }
        guard token.allSatisfy({ (0x21...0x7e).contains($0) }) else {
            throw Invalid(message: "\(origin) has characters other than printable ASCII (no spaces)")
        }
        return token
    }

    /// Equal iff same length and bytes; the time taken depends only on the lengths.
    static func constantTimeEquals(_ expected: [UInt8], _ presented: some Collection<UInt8>) -> Bool {
        var difference: UInt8 = expected.count == presented.count ? 0 : 1
        var index = presented.startIndex
        for byte in expected {
            let other: UInt8
            if index != presented.endIndex {
                other = presented[index]
                presented.formIndex(after: &index)
            } else {
                other = ~byte
            }
            difference |= byte ^ other
        }
        return difference == 0
    }

    /// The credentials of `Bearer <credentials>` (scheme case-insensitive, RFC 6750 §2.1), or nil.
    /// The credentials of the one `Authorization` header among `values`, if it is exactly one and
    /// a valid `Bearer` header (both the router's check and the WebSocket upgrade's use this).
    static func bearerCredentials(in values: [String]) -> Substring.UTF8View? {
        guard values.count == 1 else { return nil }
        return bearerCredentials(values[0])
    }

    static func bearerCredentials(_ header: String) -> Substring.UTF8View? {
        let utf8 = header.utf8
        let scheme = "bearer".utf8
        guard utf8.count > scheme.count + 1,
            zip(utf8.prefix(scheme.count), scheme).allSatisfy({ $0 | 0x20 == $1 }),
            utf8[utf8.index(utf8.startIndex, offsetBy: scheme.count)] == UInt8(ascii: " ")
        else { return nil }
        let rest = header[header.utf8.index(header.startIndex, offsetBy: scheme.count + 1)...]
        let credentials = rest.drop(while: { $0 == " " })
        guard !credentials.isEmpty, !credentials.utf8.contains(UInt8(ascii: " ")) else { return nil }
        return credentials.utf8
    }
}
