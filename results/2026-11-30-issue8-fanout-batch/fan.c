// fan.c: CPU per small send to N loopback sockets: send() loop vs one io_uring batch.
#define _GNU_SOURCE
#include <liburing.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>
static int N = 1000, ROUNDS = 300;
static int *srv, *cli;
static void pin(int c){cpu_set_t s; CPU_ZERO(&s); CPU_SET(c,&s); pthread_setaffinity_np(pthread_self(),sizeof s,&s);}
static double tcpu(void){struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t); return t.tv_sec*1e6+t.tv_nsec/1e3;}
static double twall(void){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec*1e6+t.tv_nsec/1e3;}
static volatile int done;
static void *reader(void *_){ pin(1); int ep=epoll_create1(0); for(int i=0;i<N;i++){struct epoll_event e={.events=EPOLLIN,.data.fd=cli[i]}; epoll_ctl(ep,EPOLL_CTL_ADD,cli[i],&e);} 
  struct epoll_event ev[256]; char buf[4096]; while(!done){int n=epoll_wait(ep,ev,256,100); for(int i=0;i<n;i++) while(recv(ev[i].data.fd,buf,sizeof buf,MSG_DONTWAIT)>0);} return 0;}
int main(int argc,char**argv){ const char *mode=argc>1?argv[1]:"send"; if(argc>2)N=atoi(argv[2]); if(argc>3)ROUNDS=atoi(argv[3]);
  srv=calloc(N,sizeof(int)); cli=calloc(N,sizeof(int));
  int l=socket(AF_INET,SOCK_STREAM,0); struct sockaddr_in a={.sin_family=AF_INET,.sin_addr.s_addr=htonl(0x7f000001)}; bind(l,(void*)&a,sizeof a); listen(l,4096); socklen_t al=sizeof a; getsockname(l,(void*)&a,&al);
  int one=1; for(int i=0;i<N;i++){cli[i]=socket(AF_INET,SOCK_STREAM,0); connect(cli[i],(void*)&a,sizeof a); srv[i]=accept(l,0,0); setsockopt(srv[i],IPPROTO_TCP,TCP_NODELAY,&one,sizeof one);} 
  pthread_t th; pthread_create(&th,0,reader,0); pin(0);
  char msg[120]; memset(msg,'x',sizeof msg); msg[0]=0x81; msg[1]=118;
  struct io_uring ring; unsigned flags=0; if(!strcmp(mode,"uring-defer")) flags=IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN; if(!strcmp(mode,"uring-coop")) flags=IORING_SETUP_COOP_TASKRUN;
  if(strncmp(mode,"uring",5)==0){ int r=io_uring_queue_init(1024,&ring,flags); if(r){fprintf(stderr,"init %s\n",strerror(-r)); return 1;} io_uring_register_files(&ring,srv,N);} 
  double cpu=0, wall=0; int rounds=0;
  for(int r=0;r<ROUNDS;r++){ usleep(10000); double c0=tcpu(), w0=twall();
    if(!strcmp(mode,"send")){ for(int i=0;i<N;i++) if(send(srv[i],msg,sizeof msg,MSG_NOSIGNAL)!=sizeof msg){perror("send");return 1;} }
    else { int i=0; while(i<N){ int k=0; for(;i<N && k<256;i++,k++){ struct io_uring_sqe*s=io_uring_get_sqe(&ring); io_uring_prep_send(s,i,msg,sizeof msg,MSG_NOSIGNAL); s->flags|=IOSQE_FIXED_FILE; }
        io_uring_submit_and_wait(&ring,k); struct io_uring_cqe*c; unsigned h, n=0; io_uring_for_each_cqe(&ring,h,c){ if(c->res!=sizeof msg){fprintf(stderr,"res %d\n",c->res);return 1;} n++;} io_uring_cq_advance(&ring,n); if((int)n!=k){fprintf(stderr,"n %u k %d\n",n,k);} } }
    if(r>=20){cpu+=tcpu()-c0; wall+=twall()-w0; rounds++;} }
  done=1; pthread_join(th,0);
  printf("%-12s N %d: %.3f us CPU per send, %.3f us wall per send\n",mode,N,cpu/rounds/N,wall/rounds/N); return 0;}
