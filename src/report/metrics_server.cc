// MetricsServer: a blocking HTTP/1.0 responder for `GET /metrics` on a
// loopback socket, one thread, woken for Stop() through a pipe.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "leakguard/prometheus.h"

namespace leakguard {
namespace {

constexpr int kClientTimeoutMs = 5000;
constexpr size_t kMaxRequestBytes = 8192;

absl::Status SocketError(int err, const std::string& what) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(err));
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::UnavailableError(message);
}

void SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // The client went away; nothing to report to.
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string HttpResponse(absl::string_view status, absl::string_view content_type,
                         absl::string_view body) {
  return absl::StrCat("HTTP/1.0 ", status, "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const PrometheusSink* sink, const MetricsServerOptions& options) {
  if (sink == nullptr) return absl::InvalidArgumentError("MetricsServer needs a sink");
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("port must be in 0..65535, got ", options.port));
  }
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = AF_INET;
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, options.address.c_str(), &v4) == 1) {
    if ((ntohl(v4.s_addr) >> 24) != 127) {
      return absl::InvalidArgumentError(absl::StrCat(
          "address '", options.address, "' is not a loopback address (127.0.0.0/8 or ::1)"));
    }
    auto* in = reinterpret_cast<sockaddr_in*>(&storage);
    in->sin_family = AF_INET;
    in->sin_addr = v4;
    in->sin_port = htons(static_cast<uint16_t>(options.port));
    length = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, options.address.c_str(), &v6) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK(&v6)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "address '", options.address, "' is not a loopback address (127.0.0.0/8 or ::1)"));
    }
    family = AF_INET6;
    auto* in = reinterpret_cast<sockaddr_in6*>(&storage);
    in->sin6_family = AF_INET6;
    in->sin6_addr = v6;
    in->sin6_port = htons(static_cast<uint16_t>(options.port));
    length = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", options.address, "' is not an IPv4 or IPv6 address"));
  }

  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return SocketError(errno, "socket");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    const int err = errno;
    ::close(fd);
    return SocketError(err, absl::StrCat("bind ", options.address, ":", options.port));
  }
  if (::listen(fd, 16) != 0) {
    const int err = errno;
    ::close(fd);
    return SocketError(err, "listen");
  }
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  const int port = family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
                                     : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0) {
    const int err = errno;
    ::close(fd);
    return SocketError(err, "pipe");
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer(sink, fd, wake[0], wake[1], port));
  server->thread_ = std::thread([s = server.get()] { s->Serve(); });
  return server;
}

MetricsServer::MetricsServer(const PrometheusSink* sink, int listen_fd, int wake_read,
                             int wake_write, int port)
    : sink_(sink),
      listen_fd_(listen_fd),
      wake_read_(wake_read),
      wake_write_(wake_write),
      port_(port) {}

MetricsServer::~MetricsServer() { Stop(); }

int64_t MetricsServer::requests() const noexcept {
  absl::MutexLock lock(&mu_);
  return requests_;
}

void MetricsServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  const char byte = 1;
  while (::write(wake_write_, &byte, 1) < 0 && errno == EINTR) {
  }
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::close(wake_read_);
  ::close(wake_write_);
}

void MetricsServer::Serve() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    const int ready = ::poll(fds, 2, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;  // Stop().
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    Answer(client);
    ::close(client);
  }
}

void MetricsServer::Answer(int fd) {
  // Read the request head (up to the blank line), with a deadline per read
  // so a silent client cannot hold the thread; Stop() also interrupts.
  std::string request;
  while (request.find("\r\n\r\n") == std::string::npos &&
         request.find("\n\n") == std::string::npos && request.size() < kMaxRequestBytes) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    const int ready = ::poll(fds, 2, kClientTimeoutMs);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || fds[1].revents != 0) return;
    char buffer[2048];
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    request.append(buffer, static_cast<size_t>(n));
  }
  const size_t line_end = request.find_first_of("\r\n");
  const std::string_view line = std::string_view(request).substr(0, line_end);
  const size_t first_space = line.find(' ');
  const std::string_view method = line.substr(0, first_space);
  std::string_view target =
      first_space == std::string_view::npos ? std::string_view() : line.substr(first_space + 1);
  target = target.substr(0, target.find(' '));
  target = target.substr(0, target.find('?'));
  std::string response;
  if (method != "GET" && method != "HEAD") {
    response = HttpResponse("405 Method Not Allowed", "text/plain", "only GET /metrics\n");
  } else if (target != "/metrics") {
    response = HttpResponse("404 Not Found", "text/plain", "leakguard serves /metrics only\n");
  } else {
    response = HttpResponse("200 OK", "text/plain; version=0.0.4; charset=utf-8", sink_->Render());
    if (method == "HEAD") response.resize(response.find("\r\n\r\n") + 4);
  }
  SendAll(fd, response);
  absl::MutexLock lock(&mu_);
  ++requests_;
}

}  // namespace leakguard
