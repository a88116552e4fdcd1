// Command gcp-emulators serves the Pub/Sub emulator (pstest) and the Bigtable
// emulator (bttest) on fixed local ports, so the Google client libraries can reach
// them through PUBSUB_EMULATOR_HOST and BIGTABLE_EMULATOR_HOST.
//
// pstest only offers a server on a random port, so its service implementation is
// registered on a gRPC server of our own. Every RPC goes through interceptors that
// turn a panic (pstest dereferences nil on RPCs it does not implement, such as
// snapshots) into an Unimplemented/Internal error instead of killing the process.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"cloud.google.com/go/bigtable/bttest"
	"cloud.google.com/go/pubsub/pstest"
	pb "google.golang.org/genproto/googleapis/pubsub/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func recovered(method string, r interface{}) error {
	log.Printf("recovered from panic in %s: %v\n%s", method, r, debug.Stack())
	return status.Errorf(codes.Unimplemented, "emulator cannot serve %s: %v", method, r)
}

func unaryRecover(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo,
	handler grpc.UnaryHandler) (resp interface{}, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = recovered(info.FullMethod, r)
		}
	}()
	return handler(ctx, req)
}

func streamRecover(srv interface{}, ss grpc.ServerStream, info *grpc.StreamServerInfo,
	handler grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = recovered(info.FullMethod, r)
		}
	}()
	return handler(srv, ss)
}

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	pubsubPort := flag.Int("pubsub-port", 8085, "Pub/Sub emulator port (0 disables it)")
	bigtablePort := flag.Int("bigtable-port", 8086, "Bigtable emulator port (0 disables it)")
	flag.Parse()

	if *pubsubPort != 0 {
		addr := fmt.Sprintf("%s:%d", *host, *pubsubPort)
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			log.Fatalf("pubsub: cannot listen on %s: %v", addr, err)
		}
		// pstest.NewServer also starts its own listener on a random port; we keep its
		// in-memory state (GServer) and serve that on our fixed port.
		fake := pstest.NewServer()
		gsrv := grpc.NewServer(
			grpc.UnaryInterceptor(unaryRecover),
			grpc.StreamInterceptor(streamRecover),
			grpc.MaxRecvMsgSize(64<<20),
		)
		pb.RegisterPublisherServer(gsrv, &fake.GServer)
		pb.RegisterSubscriberServer(gsrv, &fake.GServer)
		go func() {
			if err := gsrv.Serve(lis); err != nil {
				log.Fatalf("pubsub: serve: %v", err)
			}
		}()
		log.Printf("pubsub emulator listening on %s", addr)
	}
	if *bigtablePort != 0 {
		addr := fmt.Sprintf("%s:%d", *host, *bigtablePort)
		srv, err := bttest.NewServer(addr,
			grpc.UnaryInterceptor(unaryRecover),
			grpc.StreamInterceptor(streamRecover),
			grpc.MaxRecvMsgSize(256<<20),
		)
		if err != nil {
			log.Fatalf("bigtable: cannot listen on %s: %v", addr, err)
		}
		defer srv.Close()
		log.Printf("bigtable emulator listening on %s", srv.Addr)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	sig := <-stop
	log.Printf("stopping on %v", sig)
}
