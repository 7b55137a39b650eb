// Prints, for each hex key on stdin, the partitions sarama's default hash
// partitioner chooses for 2, 3, 5, 7, 12, 16 and 100 partitions.
package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/IBM/sarama"
)

func main() {
	counts := []int32{2, 3, 5, 7, 12, 16, 100}
	p := sarama.NewHashPartitioner("t")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		raw, err := hex.DecodeString(strings.TrimSpace(in.Text()))
		if err != nil {
			panic(err)
		}
		out := []string{}
		for _, n := range counts {
			part, err := p.Partition(&sarama.ProducerMessage{Key: sarama.ByteEncoder(raw)}, n)
			if err != nil {
				panic(err)
			}
			out = append(out, fmt.Sprint(part))
		}
		fmt.Println(hex.EncodeToString(raw), strings.Join(out, " "))
	}
}
