import Hummingbird

/// Requires `Authorization: Bearer <token>` on every route but the probes and the metrics.
///
/// Runs before routing, so an unknown path or a wrong method answers 401 too: without the token a
/// client learns nothing about the API. A missing or wrong token is answered with
/// `401 {"error","status":401}` and `WWW-Authenticate: Bearer`.
struct BearerAuthentication<Context: RequestContext>: RouterMiddleware {
    let token: BrokerToken

    /// `GET` on these paths needs no token (kubelet probes and Prometheus scrapes carry none).
    static var openPaths: Set<String> { ["/api/v1/health", "/api/v1/ready", "/metrics"] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.method == .get, Self.openPaths.contains(request.uri.path) {
            return try await next(request, context)
        }
        let values = request.headers[values: .authorization]
        guard values.count == 1, let presented = Self.bearerCredentials(values[0]) else {
            throw BrokerError(code: .unauthorized, message: "this route needs Authorization: Bearer <token>")
        }
        guard token.accepts(presented) else {
            throw BrokerError(code: .unauthorized, message: "the bearer token is not valid")
        }
        return try await next(request, context)
    }

    /// The credentials of `Bearer <credentials>` (scheme case-insensitive, RFC 6750 §2.1), or nil.
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
