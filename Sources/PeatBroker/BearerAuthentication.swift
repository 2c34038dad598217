import Hummingbird

/// Requires `Authorization: Bearer <token>` on every route but the probes and the metrics.
///
/// Runs before routing, so an unknown path or a wrong method answers 401 too: without the token a
/// client learns nothing about the API. A missing or wrong token is answered with
/// `401 {"error","status":401}` and `WWW-Authenticate: Bearer`.
struct BearerAuthentication<Context: RequestContext>: RouterMiddleware {
    let token: BrokerToken

    /// Whether `GET` on `path` needs no token (kubelet probes and Prometheus scrapes carry none).
    /// A switch, not a set: a generic type has no stored statics, and this runs on every request.
    static func isOpen(_ path: String) -> Bool {
        switch path {
        case "/api/v1/health", "/api/v1/ready", "/metrics": true
        default: false
        }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.method == .get, Self.isOpen(request.uri.path) {
            return try await next(request, context)
        }
        let values = request.headers[values: .authorization]
        guard let presented = BrokerToken.bearerCredentials(in: values) else {
            throw BrokerError(code: .unauthorized, message: "this route needs Authorization: Bearer <token>")
        }
        guard token.accepts(presented) else {
            throw BrokerError(code: .unauthorized, message: "the bearer token is not valid")
        }
        return try await next(request, context)
    }
}
