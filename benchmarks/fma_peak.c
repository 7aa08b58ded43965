/* The machine's f32 FMA peak, by hand: each thread runs 12 independent zmm FMAs per
   iteration (inline asm: the compiler cannot drop any), 32 FLOP each.
   gcc -O2 -pthread benchmarks/fma_peak.c -o /tmp/fma_peak && /tmp/fma_peak 2
   Measured here (2 cores): 175.0 GFLOP/s with 1 thread, 350.2 with 2. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <pthread.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
void* work(void* arg){
  long iters=(long)arg;
  for(long it=0;it<iters;it++){
    __asm__ volatile(
      "vfmadd231ps %%zmm0,%%zmm1,%%zmm2\n vfmadd231ps %%zmm0,%%zmm1,%%zmm3\n vfmadd231ps %%zmm0,%%zmm1,%%zmm4\n vfmadd231ps %%zmm0,%%zmm1,%%zmm5\n"
      "vfmadd231ps %%zmm0,%%zmm1,%%zmm6\n vfmadd231ps %%zmm0,%%zmm1,%%zmm7\n vfmadd231ps %%zmm0,%%zmm1,%%zmm8\n vfmadd231ps %%zmm0,%%zmm1,%%zmm9\n"
      "vfmadd231ps %%zmm0,%%zmm1,%%zmm10\n vfmadd231ps %%zmm0,%%zmm1,%%zmm11\n vfmadd231ps %%zmm0,%%zmm1,%%zmm12\n vfmadd231ps %%zmm0,%%zmm1,%%zmm13\n"
      ::: "xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm12","xmm13");
  }
  return 0;
}
int main(int argc,char**argv){
  int T=atoi(argv[1]); long iters=100000000;
  pthread_t th[8]; double best=1e9;
  for(int r=0;r<3;r++){double t0=now();
  for(int i=0;i<T;i++) pthread_create(&th[i],0,work,(void*)iters);
  for(int i=0;i<T;i++) pthread_join(th[i],0);
  double t=now()-t0; if(t<best)best=t;}
  printf("%d threads: %.1f GFLOP/s\n",T,(double)T*iters*12*32/best/1e9);
}
