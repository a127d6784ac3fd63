import HTTP1
import Iamport

/// Inbound authentication with the client token, when one is configured.
/// SDKs send the token they got from the local getToken in one of three
/// forms; any of them carrying the client token lets the request through.
struct ClientAuthenticator: Sendable {
    let clientToken: Secret?

    var isEnabled: Bool { clientToken != nil }

    func isAuthorized(_ head: RequestHead) -> Bool {
        guard let clientToken else { return true }
        var authorized = false
        for field in head.fields {
            // Check every candidate, so timing does not tell which form matched.
            switch field.kind {
            case .authorization:
                var value = head.bytes[field.value]
                if value.count > 7, value.prefix(7).equalsLowercased("bearer ") {
                    value = value.dropFirst(7)
                    while let first = value.first, ASCII.isOWS(first) { value = value.dropFirst() }
                }
                if clientToken.constantTimeEquals(value) { authorized = true }
            case .impTokenHeader:
                if clientToken.constantTimeEquals(head.bytes[field.value]) { authorized = true }
            default:
                break
            }
        }
        return authorized
    }
}
